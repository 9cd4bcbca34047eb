"""``bench list``: past runs with date, preset, commit and verdict."""

from __future__ import annotations

import argparse

from bench.commands.common import EXIT_OK, add_results_dir

HELP = "past runs: date, preset, commit, verdict"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_results_dir(parser)


def main(args: argparse.Namespace) -> int:
    from bench.present.listing import format_run_list, list_runs

    print(format_run_list(list_runs(args.results_dir)))
    return EXIT_OK
