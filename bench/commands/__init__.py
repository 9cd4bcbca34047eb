"""``python -m bench run|plot|report|list|compare|doctor``.

Everything that can be wrong with a request (unknown preset, scenario, backend
or run; limits too low for the sweep; a plan over its time budget) is reported
with its remedy before anything starts, and the exit status says what happened:
0 done, 1 failed, 2 bad request, 130 interrupted (Ctrl-C; the run is kept,
marked partial).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from bench.measure.config import (
    ALL_BACKENDS,
    ALL_SCENARIOS,
    PUBLIC_PRESETS,
    ConfigError,
    build_config,
    shared_cpu,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# A plan may overrun its budget's estimate by this factor before run refuses it.
BUDGET_TOLERANCE = 1.0


class UsageError(Exception):
    """A request that cannot be carried out; the message names the cause and the remedy."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"bench: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _csv_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m bench",
        description="Measure select vs poll vs epoll servers and judge the claims about them.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="measure (default preset: quick, at most ~3 minutes)")
    run.add_argument(
        "--preset",
        default="quick",
        help=f"one of {', '.join(PUBLIC_PRESETS)} (default: quick)",
    )
    run.add_argument(
        "--scenario",
        action="append",
        type=_csv_list,
        metavar="NAME[,NAME]",
        help=f"only these scenarios (repeatable): {', '.join(ALL_SCENARIOS)}",
    )
    run.add_argument(
        "--backend",
        action="append",
        type=_csv_list,
        metavar="NAME[,NAME]",
        help=f"only these backends (repeatable): {', '.join(ALL_BACKENDS)}",
    )
    run.add_argument("--out", default=None, help="results folder (default: ./results)")
    run.add_argument("--repetitions", type=int, default=None, help="repetitions per cell")
    run.add_argument(
        "--server-cpu", type=int, default=0, help="CPU the server is pinned to (default 0)"
    )
    run.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="time budget in seconds (default: the preset's); a plan over it is refused",
    )
    run.add_argument(
        "--force",
        action="store_true",
        help="run even when the planned duration exceeds the budget",
    )
    run.add_argument(
        "--dry-run", action="store_true", help="print the plan and its duration, measure nothing"
    )
    run.add_argument("--no-charts", action="store_true", help="skip charts and report")

    for name, text in (
        ("plot", "redraw a run's charts from its folder (no measuring)"),
        ("report", "rewrite a run's verdict and report.md from its folder (no measuring)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("run", nargs="?", default="latest", help="run folder, id or 'latest'")
        p.add_argument("--results-dir", default=None, help="where runs live (default ./results)")

    lst = sub.add_parser("list", help="past runs: date, preset, commit, verdict")
    lst.add_argument("--results-dir", default=None, help="where runs live (default ./results)")

    cmp_ = sub.add_parser("compare", help="two runs' cells side by side, beyond-noise differences")
    cmp_.add_argument("run_a")
    cmp_.add_argument("run_b")
    cmp_.add_argument("--results-dir", default=None, help="where runs live (default ./results)")

    doc = sub.add_parser("doctor", help="check cores, limits, ports, tools; print remedies")
    doc.add_argument(
        "--connections",
        type=int,
        default=16000,
        help="size the checks for this many connections per trial (default: full preset)",
    )
    return parser


def _flatten(values: list[list[str]] | None) -> tuple[str, ...] | None:
    if not values:
        return None
    return tuple(v for group in values for v in group)


def _err(text: str) -> None:
    print(f"bench: error: {text}", file=sys.stderr)


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


# --------------------------------------------------------------------------- run


def cmd_run(args: argparse.Namespace) -> int:
    from bench.measure.doctor import LimitError, check_limits
    from bench.measure.plan import estimate_plan, max_connections, plan_trials

    try:
        cfg = build_config(
            preset=args.preset,
            scenarios=_flatten(args.scenario),
            backends=_flatten(args.backend),
            repetitions=args.repetitions,
            out_dir=args.out,
            server_cpu=args.server_cpu,
            budget_s=args.budget_s,
        )
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_USAGE
    if cfg.out_dir == "results" and args.out is None:
        from bench.store.schema import default_results_dir

        cfg = cfg.replace(out_dir=str(default_results_dir()))

    trials = plan_trials(cfg)
    estimate = estimate_plan(cfg, trials)
    if not trials and "micro" not in cfg.scenarios:
        _err("the selection leaves nothing to measure: check --scenario and --backend")
        return EXIT_USAGE
    warnings: list[str] = []
    try:
        check_limits(max_connections(trials))
    except LimitError as exc:
        _err(str(exc))
        return EXIT_USAGE
    if shared_cpu(cfg):
        warnings.append(
            "shared CPU: only one CPU is available, so the server and the load generator "
            "share it; numbers include their contention"
        )
    print(
        f"bench run: preset {cfg.preset}, scenarios {', '.join(cfg.scenarios)}, "
        f"backends {', '.join(cfg.backends)}, {cfg.repetitions} repetitions; "
        f"server on CPU {cfg.server_cpu}, load generator on CPUs {list(cfg.loadgen_cpus)}"
    )
    print(f"planned duration: {estimate.describe()} (budget {cfg.budget_s:.0f} s)")
    for text in warnings:
        print(f"warning: {text}", file=sys.stderr)
    if estimate.total_s > cfg.budget_s * BUDGET_TOLERANCE:
        msg = (
            f"the plan (~{estimate.total_s:.0f} s) exceeds the {cfg.preset} budget of "
            f"{cfg.budget_s:.0f} s: choose fewer scenarios/backends or repetitions, "
            f"raise --budget-s, or pass --force"
        )
        if not args.force:
            _err(msg)
            return EXIT_USAGE
        print(f"warning: {msg}", file=sys.stderr)
        warnings.append(f"plan ~{estimate.total_s:.0f} s over budget {cfg.budget_s:.0f} s")
    if "micro" in cfg.scenarios:
        try:
            import bench.measure.micro  # noqa: F401  (fail before measuring, not after)
        except ImportError as exc:
            _err(f"the micro benchmarks are unavailable ({exc}); run without --scenario micro")
            return EXIT_USAGE
    if args.dry_run:
        for t in trials:
            rep = t.repetition + 1
            print(f"  {t.order_index:4d} {t.scenario:14s} {t.backend:9s} {t.cell} rep {rep}")
        return EXIT_OK

    from bench.present.progress import RunProgress
    from bench.measure.protocol import RunInterrupted, run_benchmark

    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    progress = RunProgress(trials, extra_estimated_s=estimate.micro_s + estimate.analysis_s)
    try:
        outcome = run_benchmark(cfg, trials, progress, warnings)
    except RunInterrupted as exc:
        print(
            f"\ninterrupted: {exc.trials_done} finished trials are kept in {exc.path} "
            f"(marked partial); summarise them with `python -m bench report {exc.path}`",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(
        f"measured {outcome.trials_done}/{outcome.trials_planned} trials in "
        f"{outcome.duration_s:.0f} s ({outcome.failed} failed, {outcome.flagged} flagged)"
    )
    print(f"run folder: {outcome.path}")
    if args.no_charts:
        return EXIT_OK
    try:
        _postprocess(Path(outcome.path), progress_note=progress.note)
    except KeyboardInterrupt:
        print("\ninterrupted while drawing; run `python -m bench report` later", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def _postprocess(path: Path, progress_note: Any = None, charts: bool = True) -> None:
    """Verdict, charts and report from the run folder alone (what plot/report also do)."""
    from bench.present.charts import draw_all
    from bench.present.report import write_report
    from bench.store.results import load
    from bench.analyse.verdict import compute_verdict, format_verdict_table, write_verdict

    data = load(path)
    verdict = compute_verdict(data)
    write_verdict(data, verdict)
    chart_files: list[Any] = []
    if charts:
        chart_files = list(draw_all(data) or [])
    write_report(load(path), verdict)
    print()
    print(format_verdict_table(verdict))
    print()
    if charts:
        print(f"charts ({len(chart_files)} files): {data.charts_dir}")
    print(f"report: {path / 'report.md'}")


# ----------------------------------------------------------------- read-only commands


def _resolve(run: str, results_dir: str | None) -> Path:
    from bench.store.results import resolve_run_path

    return resolve_run_path(run, results_dir)


def cmd_plot(args: argparse.Namespace) -> int:
    from bench.store.results import load

    data = load(_resolve(args.run, args.results_dir))
    from bench.present.charts import draw_all

    files = list(draw_all(data) or [])
    print(f"charts ({len(files)} files): {data.charts_dir}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    _postprocess(_resolve(args.run, args.results_dir), charts=False)
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from bench.present.listing import format_run_list, list_runs

    print(format_run_list(list_runs(args.results_dir)))
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.store.results import load

    a = load(_resolve(args.run_a, args.results_dir))
    b = load(_resolve(args.run_b, args.results_dir))
    from bench.analyse.compare import compare_runs, format_compare

    print(format_compare(compare_runs(a, b)))
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from bench.measure.doctor import format_checks, run_checks

    checks = run_checks(args.connections)
    print(format_checks(checks))
    return EXIT_FAILED if any(c.severity == "error" and not c.ok for c in checks) else EXIT_OK


COMMANDS = {
    "run": cmd_run,
    "plot": cmd_plot,
    "report": cmd_report,
    "list": cmd_list,
    "compare": cmd_compare,
    "doctor": cmd_doctor,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from bench.store.results import RunNotFoundError, UnknownSchemaVersionError

    try:
        return COMMANDS[args.command](args)
    except (RunNotFoundError, UnknownSchemaVersionError) as exc:
        _err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as exc:
        _err(str(exc))
        return EXIT_USAGE
