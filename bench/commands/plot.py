"""``bench plot RUN``: redraw a run's charts from its folder (no measuring)."""

from __future__ import annotations

import argparse

from bench.commands.common import EXIT_OK, add_run_argument, load_run, resolve

HELP = "redraw a run's charts from its folder (no measuring)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_argument(parser)


def main(args: argparse.Namespace) -> int:
    from bench.present.chart_catalogue import draw_all

    data = load_run(resolve(args.run, args.results_dir))
    files = list(draw_all(data) or [])
    print(f"charts ({len(files)} files): {data.charts_dir}")
    return EXIT_OK
