"""``bench calibration RUN [RUN ...]``: how many A/A runs made each false call.

Each run must be a calibration run (``bench run --calibrate``: run.json's config
says ``calibrate: true``) with its verdict written; the verdict is read from
``verdict.json``, never recomputed. For each rule (``CALIBRATION_RULES``) the
command counts the runs that made at least one false call under it, then for
each check the runs that made it false, naming them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.common import (
    EXIT_OK,
    UsageError,
    add_results_dir,
    is_calibration_run,
    load_run,
    resolve,
)

HELP = "tally the false calls of A/A runs made by `bench run --calibrate`"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", help="calibration run folders or ids")
    add_results_dir(parser)


def _checks(path: Path) -> list:  # type: ignore[type-arg]
    from bench.analyse.calibration import verdict_checks

    run = load_run(path)
    if not is_calibration_run(run.meta):
        raise UsageError(
            f"{path} is not a calibration run (its run.json config has no calibrate: true): "
            "pass only runs made by `python -m bench run --calibrate`"
        )
    if run.verdict is None:
        raise UsageError(
            f"{path} has no verdict.json (the run stopped before its verdict): write it with "
            f"`python -m bench report {path}`, or leave the run out"
        )
    checks = verdict_checks(run.verdict)
    if not checks:
        raise UsageError(
            f"{path}'s verdict.json judges no same-server family (no trials of it were "
            "usable): leave the run out"
        )
    return checks


def _runs(names: list[str], results_dir: str | None) -> list[Path]:
    paths: list[Path] = []
    for name in names:
        path = resolve(name, results_dir).resolve()
        if path in paths:
            raise UsageError(f"run {path.name} is named twice: name each run once")
        paths.append(path)
    return paths


def main(args: argparse.Namespace) -> int:
    from bench.analyse.calibration import FALSE_CALL_WORDS, tally
    from bench.analyse.rules import CALIBRATION_RULES

    paths = _runs(args.runs, args.results_dir)
    runs = [(p.name, _checks(p)) for p in paths]
    rules, keys = tally(runs)
    n = len(runs)
    print(f"A/A calibration, same-server family: {n} run(s)")
    for run_id, checks in runs:
        print(f"  {run_id}: {sum(c.false_call for c in checks)} false call(s)")
    print()
    print("Runs with at least one false call, per rule:")
    for row in rules:
        label = f"{row.key} ({FALSE_CALL_WORDS[row.rule]})"
        print(_row(label, len(row.runs_false), row.runs_checked, row.runs_false))
    print()
    print("Runs that made each false call (checks no run got wrong are not listed):")
    wrong = [row for row in keys if row.runs_false]
    for row in wrong:
        print(_row(row.key, len(row.runs_false), row.runs_checked, row.runs_false))
    if not wrong:
        print("  none")
    print()
    print(CALIBRATION_RULES["calibration"])
    return EXIT_OK


def _row(label: str, false: int, checked: int, run_ids: tuple[str, ...]) -> str:
    share = f"{false / checked:.0%}" if checked else "n/a"
    named = f": {', '.join(run_ids)}" if run_ids else ""
    return f"  {label}: {false} of {checked} ({share}){named}"
