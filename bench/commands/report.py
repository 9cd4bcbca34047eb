"""``bench report RUN``: rewrite a run's verdict, report.md and report.html from its folder."""

from __future__ import annotations

import argparse

from bench.commands.common import EXIT_OK, add_run_argument, postprocess, resolve

HELP = "rewrite a run's verdict, report.md and report.html from its folder (no measuring)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_argument(parser)


def main(args: argparse.Namespace) -> int:
    postprocess(resolve(args.run, args.results_dir), charts=False)
    return EXIT_OK
