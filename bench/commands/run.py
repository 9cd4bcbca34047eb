"""``bench run``: plan, check, measure, then verdict, charts and report.

Everything that can be wrong with a request (unknown preset, scenario or
backend; limits too low for the sweep; a plan over its time budget) is reported
with its remedy before anything starts.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from bench.commands.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    err,
    postprocess,
)
from bench.commands.run_lock import (
    EXIT_BUSY,
    name_locked_run,
    release_machine_lock,
    take_machine_lock,
)
from bench.measure import scenarios
from bench.measure.config import PUBLIC_PRESETS, BenchConfig, ConfigError, build_config
from servers import registry

HELP = "measure (default preset: quick, at most ~3 minutes)"


def _csv_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _flatten(values: list[list[str]] | None) -> tuple[str, ...] | None:
    if not values:
        return None
    return tuple(v for group in values for v in group)


def add_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--preset", default="quick", help=f"one of {', '.join(PUBLIC_PRESETS)} (default: quick)"
    )
    run.add_argument(
        "--scenario",
        action="append",
        type=_csv_list,
        metavar="NAME[,NAME]",
        help=f"only these scenarios (repeatable): {', '.join(scenarios.names())}",
    )
    run.add_argument(
        "--backend",
        action="append",
        type=_csv_list,
        metavar="NAME[,NAME]",
        help=f"only these backends (repeatable): {', '.join(registry.names())}",
    )
    run.add_argument("--out", default=None, help="results folder (default: ./results)")
    run.add_argument("--repetitions", type=int, default=None, help="repetitions per cell")
    run.add_argument(
        "--order-seed",
        type=int,
        default=None,
        metavar="N",
        help="seed of the trials' random order within each repetition (default: a fresh one, "
        "recorded in run.json; pass a run's to repeat its order)",
    )
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
        "--force", action="store_true", help="run even when the planned duration exceeds the budget"
    )
    run.add_argument(
        "--dry-run", action="store_true", help="print the plan and its duration, measure nothing"
    )
    run.add_argument("--no-charts", action="store_true", help="skip charts and report")
    run.add_argument(
        "--no-wait",
        action="store_true",
        help="refuse at once (exit status 75) when another benchmark is measuring on this "
        "machine, instead of waiting for it to finish",
    )
    run.add_argument(
        "--require-quiet",
        action="store_true",
        help="refuse to measure on a busy machine (load > 0.5 per CPU or steal > 5%%) "
        "instead of measuring with a warning",
    )
    run.add_argument(
        "--calibrate",
        action="store_true",
        help="the A/A check: the preset's idle- and active-scaling cells on one server "
        "declared as select, poll and epoll (the same-server family); prints how often "
        "the verdict's rules made a false call (tally runs with `bench calibration`)",
    )
    run.add_argument(
        "--cluster",
        metavar="tcp://HOST:8786",
        default=None,
        help="place the server on the Dask worker with resource server=1 and the load on "
        "those with load=1 (docs/cluster.md; needs pip install -e '.[cluster]')",
    )
    run.add_argument(
        "--allow-remote",
        action="append",
        type=_csv_list,
        metavar="ADDR[,ADDR]",
        help="with --cluster: the non-loopback addresses bench and the load generators may "
        "connect to (the server host's); no other is ever a target",
    )


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _config(args: argparse.Namespace) -> BenchConfig:
    calibrate = bool(getattr(args, "calibrate", False))
    if calibrate and args.backend:
        raise ConfigError("--calibrate measures the same-server family only: drop --backend")
    cfg = build_config(
        preset=args.preset,
        scenarios=None if calibrate else _flatten(args.scenario),
        backends=_flatten(args.backend),
        repetitions=args.repetitions,
        out_dir=args.out,
        server_cpu=args.server_cpu,
        budget_s=args.budget_s,
        order_seed=args.order_seed,
    )
    if cfg.order_seed is None:
        from bench.measure.plan import fresh_order_seed

        cfg = cfg.replace(order_seed=fresh_order_seed())
    if calibrate:
        from bench.measure.calibration import CALIBRATION_SCENARIOS, calibration_config

        cfg = calibration_config(cfg, _flatten(args.scenario) or CALIBRATION_SCENARIOS)
    if args.out is None:
        from bench.store.schema import default_results_dir

        cfg = cfg.replace(out_dir=str(default_results_dir()))
    return cfg


def _open_placement(args: argparse.Namespace) -> Any:
    """None for this host; a DaskPlacement for --cluster (distributed imported only then)."""
    if not args.cluster:
        if args.allow_remote:
            raise ValueError("--allow-remote only applies with --cluster")
        return None
    from bench.measure.placement.cluster import ClusterError
    from bench.measure.placement.dask_hosts import DaskPlacement

    try:
        return DaskPlacement(args.cluster, _flatten(args.allow_remote) or ())
    except ClusterError as exc:
        raise ValueError(str(exc)) from exc


def main(args: argparse.Namespace) -> int:
    try:
        placement = _open_placement(args)
    except ValueError as exc:
        err(str(exc))
        return EXIT_USAGE
    try:
        return _main(args, placement)
    finally:
        if placement is not None:
            placement.end_all()


def _main(args: argparse.Namespace, placement: Any) -> int:
    from bench.measure.preflight import PreflightError, preflight

    try:
        checked = preflight(
            _config(args),
            budget_given=args.budget_s is not None,
            force=args.force,
            placement=placement,
        )
    except (ConfigError, PreflightError) as exc:
        err(str(exc))
        return EXIT_USAGE
    cfg, trials, estimate = checked.cfg, checked.trials, checked.estimate
    warnings = list(checked.warnings)
    if placement is not None:
        hosts = placement.describe()["hosts"]
        print(
            "cluster: " + ", ".join(f"{h['role']} {h['hostname']} ({h['address']})" for h in hosts)
        )
    print(
        f"bench run: preset {cfg.preset}, scenarios {', '.join(cfg.scenarios)}, "
        f"backends {', '.join(cfg.backends)}, {cfg.repetitions} repetitions; "
        f"server on CPU {cfg.server_cpu}, load generator on CPUs {list(cfg.loadgen_cpus)}; "
        f"order seed {cfg.order_seed}"
    )
    print(f"planned duration: {estimate.describe()} (budget {checked.budget_text})")
    for text in warnings:
        print(f"warning: {text}", file=sys.stderr)
    if args.dry_run:
        for t in trials:
            rep = t.repetition + 1
            print(
                f"  {t.order_index:4d} {t.scenario:14s} {t.backend:9s} {t.cell} rep {rep}"
                f" pos {t.position_in_repetition}"
            )
        return EXIT_OK
    # Held from before the quiet check (a run that waited checks the machine once the
    # other has finished) to the end of the run; --dry-run above never takes it.
    if not take_machine_lock(cfg.preset, getattr(args, "no_wait", False)):
        return EXIT_BUSY
    try:
        busy = _quiet_or_warning(cfg, args.require_quiet)
        if busy is not None and args.require_quiet:
            err(f"{busy}; --require-quiet refuses to measure: stop the other work and retry")
            return EXIT_USAGE
        if busy is not None:
            print(f"WARNING: {busy}", file=sys.stderr)
            warnings.append(busy)
        extra_s = estimate.in_process_s + estimate.analysis_s
        return _measure(cfg, trials, extra_s, warnings, args, placement)
    finally:
        release_machine_lock()


def _quiet_or_warning(cfg: BenchConfig, require_quiet: bool) -> str | None:
    """None on a quiet machine; else the warning that goes into run.json, verdict and report."""
    from bench.measure.machine.quiet import wait_for_quiet

    def note(text: str) -> None:
        print(text, file=sys.stderr)

    max_wait_s = 0.0 if require_quiet else cfg.quiet_wait_s
    sample, waited = wait_for_quiet(max_wait_s, note, cfg.quiet_sample_s)
    if sample.quiet:
        return None
    return (
        f"busy machine: {sample.describe()} after waiting {waited:.0f} s; other work "
        "competes with the server and the load generator, so numbers are inflated and noisier"
    )


def _left_out(outcome: Any) -> int:
    """Finished trials the verdict leaves out, whatever the fault (the analysis's own count);
    the runner's flag count when the table cannot be read."""
    from bench.analyse.flags import left_out_count
    from bench.store.results import load

    try:
        return left_out_count(load(outcome.path).trials)
    except Exception:  # the run's own summary must not fail on the table
        return int(outcome.flagged)


def _measure(
    cfg: BenchConfig,
    trials: list[Any],
    extra_estimated_s: float,
    warnings: list[str],
    args: argparse.Namespace,
    placement: Any = None,
) -> int:
    from bench.measure.machine import git_state, machine_metadata
    from bench.measure.run import RunInterrupted, run_benchmark
    from bench.present.progress import RunProgress
    from bench.store.results import RunWriteError, create_run

    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    progress = RunProgress(trials, extra_estimated_s=extra_estimated_s)
    try:
        sink = create_run(
            cfg.out_dir,
            cfg.preset,
            cfg.to_dict(),
            machine_metadata(),
            git_state(),
            cells_total=len(trials),
            placement=placement.describe() if placement is not None else None,
        )
    except OSError as exc:
        err(
            f"cannot create a run folder in {cfg.out_dir}: {exc.strerror or exc}; nothing was "
            "measured. Make it writable and free space there, or choose another --out"
        )
        return EXIT_FAILED
    except RunWriteError as exc:
        err(str(exc))
        return EXIT_FAILED
    name_locked_run(sink.run_id)
    try:
        for text in warnings:
            sink.add_warning(text)
        outcome = run_benchmark(cfg, trials, sink, progress, placement)
    except RunWriteError as exc:
        if exc.recorded is None:  # before the run loop could mark the run: recorded as failed
            sink.mark("partial")
        err(str(exc))
        return EXIT_FAILED
    except RunInterrupted as exc:
        print(
            f"\ninterrupted: {exc.trials_done} finished trials are kept in {exc.path} "
            f"(marked partial); summarise them with `python -m bench report {exc.path}`",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    finally:
        if placement is not None:  # every host's clock per trial, and any host lost
            sink.update_meta(placement=placement.describe())
    print(
        f"measured {outcome.trials_done}/{outcome.trials_planned} trials in "
        f"{outcome.duration_s:.0f} s ({outcome.failed} failed, {_left_out(outcome)} flagged)"
    )
    print(f"run folder: {outcome.path}")
    if args.no_charts:
        return EXIT_OK
    try:
        postprocess(Path(outcome.path))
    except KeyboardInterrupt:
        print("\ninterrupted while drawing; run `python -m bench report` later", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK
