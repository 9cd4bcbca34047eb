"""What every subcommand shares: exit statuses, the error printer, the run resolver."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from bench.store.results import RunData

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A request that cannot be carried out; the message names the cause and the remedy."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"bench: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def err(text: str) -> None:
    print(f"bench: error: {text}", file=sys.stderr)


def note(text: str) -> None:
    """One line on stderr that is not an error: what reading a run had to repair."""
    print(f"bench: note: {text}", file=sys.stderr)


def load_run(path: Path | str) -> RunData:
    """The run folder, checked against its manifest; a repair is reported in one line."""
    from bench.store.results import load

    return load(path, notify=note)


def add_run_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", nargs="?", default="latest", help="run folder, id or 'latest'")
    add_results_dir(parser)


def add_results_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-dir", default=None, help="where runs live (default ./results)")


def resolve(run: str, results_dir: str | None) -> Path:
    from bench.store.results import resolve_run_path

    return resolve_run_path(run, results_dir)


def is_calibration_run(meta: dict[str, Any]) -> bool:
    """Whether run.json says the run is an A/A calibration (``bench run --calibrate``)."""
    return bool((meta.get("config") or {}).get("calibrate"))


def postprocess(path: Path, charts: bool = True) -> None:
    """Verdict, charts and report from the run folder alone (what plot/report also do)."""
    from bench.analyse.verdict import compute_typed_verdict, write_verdict
    from bench.present.chart_catalogue import draw_all
    from bench.present.html_report import write_html_report
    from bench.present.report import write_report
    from bench.present.verdict_table import format_verdict_table

    data = load_run(path)
    calibrating = is_calibration_run(data.meta)
    if calibrating:
        # Its backends are a plugin: registered here too, so the verdict finds their family.
        from bench.measure.calibration import enable_calibration_backends

        enable_calibration_backends()
    # Computed once: written, then charts, report and table read this same tree.
    typed = compute_typed_verdict(data)
    write_verdict(data, typed)
    verdict = typed.to_dict()
    chart_files = list(draw_all(data, typed) or []) if charts else []
    reloaded = load_run(path)
    write_report(reloaded, verdict)
    html = write_html_report(reloaded, typed)
    print()
    print(format_verdict_table(verdict))
    print()
    if calibrating:
        from bench.analyse.calibration import format_checks, verdict_checks

        print(format_checks(verdict_checks(verdict)))
        print()
    if charts:
        print(f"charts ({len(chart_files)} files): {data.charts_dir}")
    print(f"report: {path / 'report.md'}")
    print(f"page:   {html} (open it in a browser; it works offline)")
