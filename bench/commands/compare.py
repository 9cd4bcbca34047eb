"""``bench compare A B``: two runs' cells side by side, with beyond-noise differences."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.common import EXIT_OK, UsageError, add_results_dir, load_run, resolve

HELP = "two runs' cells side by side, beyond-noise differences"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    parser.add_argument(
        "--html",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="also write the comparison as one self-contained page (default path: "
        "compare_<run A>.html in run B's folder)",
    )
    add_results_dir(parser)


def main(args: argparse.Namespace) -> int:
    from bench.analyse.compare import compare_runs, format_compare

    a = load_run(resolve(args.run_a, args.results_dir))
    b = load_run(resolve(args.run_b, args.results_dir))
    page = _page_path(args.html, b.path / f"compare_{a.path.name}.html")
    df = compare_runs(a, b)
    print(format_compare(df))
    if page is not None:
        from bench.present.html_compare import render_compare_page
        from bench.present.html_page import write_page

        print(f"page: {write_page(page, render_compare_page(a, b, df))}")
    return EXIT_OK


def _page_path(html: str | None, default: Path) -> Path | None:
    """Where --html writes (None: no page); a clear error for a path it cannot write."""
    if html is None:
        return None
    path = Path(html) if html else default
    if path.is_dir():
        raise UsageError(f"--html {path} is a folder: name the page's file, e.g. {path}/x.html")
    if not path.parent.is_dir():
        raise UsageError(f"--html {path}: its folder {path.parent} does not exist; create it")
    return path
