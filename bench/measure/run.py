"""The run loop: every planned trial in order, then the in-process benchmarks.

Results go to a ``RunSink`` (the run folder writer of ``bench.store``, handed in
by the ``run`` command), so measuring never depends on how results are stored.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from bench.measure import scenarios
from bench.measure.columns import trial_summary
from bench.measure.config import BenchConfig
from bench.measure.placement import LocalPlacement, Placement
from bench.measure.protocol import run_trial
from bench.measure.trial import Trial
from bench.tables import TrialStatus


class RunSink(Protocol):
    """Where a run's results go, as they are measured."""

    path: Path

    @property
    def raw_dir(self) -> Path: ...

    def write_raw_json(self, name: str, doc: Mapping[str, Any]) -> str: ...

    def append_trial(self, row: Mapping[str, Any]) -> None: ...

    def write_table(self, name: str, table: Any) -> None: ...

    def update_meta(self, **fields: Any) -> None: ...

    def add_warning(self, text: str) -> None: ...

    def mark(self, status: str) -> None: ...


class Progress(Protocol):
    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: object) -> Any: ...

    def start_trial(self, trial: Trial) -> None: ...

    def end_trial(self, trial: Trial, status: str, summary: str) -> None: ...

    def note(self, message: str) -> None: ...


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C ended a run; ``path`` is its (partial) run folder."""

    def __init__(self, path: Any, trials_done: int) -> None:
        super().__init__(f"run interrupted after {trials_done} trials: {path}")
        self.path = path
        self.trials_done = trials_done


@dataclasses.dataclass
class RunOutcome:
    """How a run ended: where it is, whether it finished, how long it took."""

    path: Any
    status: str  # "complete" | "partial"
    trials_done: int
    trials_planned: int
    duration_s: float
    failed: int
    flagged: int


def run_in_process(cfg: BenchConfig, sink: RunSink, progress: Progress) -> None:
    """Scenarios measured inside this process (micro benchmarks), after the trials."""
    for name in cfg.scenarios:
        scenario = scenarios.get(name)
        if scenario.measure_in_process is None:
            continue
        progress.note(f"{name}: {scenario.summary}...")
        try:
            table = scenario.measure_in_process(cfg.settings[name], cfg, sink.raw_dir)
            sink.write_table(name, table)
        except Exception as exc:  # the load trials stay valid without them
            # What finished before the failure (e.g. the micro processes before it) is kept.
            partial = getattr(exc, "table", None)
            if partial is not None and not partial.empty:
                sink.write_table(name, partial)
            sink.add_warning(f"{name} benchmarks failed: {exc}")
            progress.note(f"warning: {name} benchmarks failed: {exc}")


def run_benchmark(
    cfg: BenchConfig,
    trials: list[Trial],
    sink: RunSink,
    progress: Progress,
    placement: Placement | None = None,
) -> RunOutcome:
    """Measure every planned trial (then the in-process scenarios) into ``sink``.

    Ctrl-C (KeyboardInterrupt) stops after the current trial is abandoned: the
    finished trials stay in the tables, the run is marked ``partial``, every
    child process is ended, and RunInterrupted is raised for the caller to exit
    non-zero. The caller has already checked limits and the budget.
    """
    placement = placement or LocalPlacement()
    t0 = time.monotonic()
    # bench runs on the load generator's CPUs while it measures here (its threads
    # started from now on too: the progress display): it is the client side, and the
    # disturbance check counts its CPU time as the load CPUs' own. Unpinned, it ran on
    # the server's CPU: in a default run on a quiet machine 8-9 of 122 open-loop trials
    # read 40-74% of the server CPU as "other processes" (2026-12-06). Its children
    # pin themselves (servers to the server CPU, workers to theirs), which an
    # affinity mask of the parent does not prevent.
    previous = os.sched_getaffinity(0)
    if isinstance(placement, LocalPlacement) and set(cfg.loadgen_cpus) <= previous:
        os.sched_setaffinity(0, set(cfg.loadgen_cpus))
    done = failed = flagged = 0
    status = "partial"
    try:
        with progress:
            for trial in trials:
                progress.start_trial(trial)
                outcome = run_trial(cfg, trial, placement, sink.write_raw_json)
                if outcome.interrupted:
                    raise KeyboardInterrupt
                sink.append_trial(outcome.row)
                done += 1
                failed += outcome.row["status"] == TrialStatus.FAILED
                flagged += (
                    bool(outcome.row.get("flagged")) and outcome.row["status"] == TrialStatus.OK
                )
                sink.update_meta(cells_done=done)
                progress.end_trial(trial, outcome.row["status"], trial_summary(outcome.row))
            run_in_process(cfg, sink, progress)
        status = "complete"
    except KeyboardInterrupt as exc:
        sink.add_warning(
            f"interrupted by the user after {done} of {len(trials)} trials: the run is partial"
        )
        raise RunInterrupted(sink.path, done) from exc
    finally:
        placement.end_all()
        sink.mark(status)
        os.sched_setaffinity(0, previous)
    return RunOutcome(
        path=sink.path,
        status=status,
        trials_done=done,
        trials_planned=len(trials),
        duration_s=time.monotonic() - t0,
        failed=failed,
        flagged=flagged,
    )
