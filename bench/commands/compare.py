"""``bench compare A B``: two runs' cells side by side, with beyond-noise differences."""

from __future__ import annotations

import argparse

from bench.commands.common import EXIT_OK, add_results_dir, resolve

HELP = "two runs' cells side by side, beyond-noise differences"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    add_results_dir(parser)


def main(args: argparse.Namespace) -> int:
    from bench.analyse.compare import compare_runs, format_compare
    from bench.store.results import load

    a = load(resolve(args.run_a, args.results_dir))
    b = load(resolve(args.run_b, args.results_dir))
    print(format_compare(compare_runs(a, b)))
    return EXIT_OK
