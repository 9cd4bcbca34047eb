"""micro: the cost of one wait call, measured in-process with pytest-benchmark.

N registered socketpairs, one or all ready, timeout 0; run after the load
trials on the server's CPU, so the cost is measured on the same core as the
in-server figures. The standard and full sets add register / modify /
unregister against N and a blocking wait woken by another thread
(``bench.measure.micro``): 70 more cases, 22 s on the 2-vCPU VM (a busy
moment; pinned to CPU 0), so their estimate is 60 s + 25 s.

The benchmarks run in ``processes`` fresh subprocesses one after another, each
pinned to the server's CPU and given 1/processes of the time; the process is the
unit of replication of the micro intervals (``bench.measure.micro``). Each process
pays its own start (pytest, ~0.8 s) and socketpair set-up: the quick set took
10.2 s in one process and 17.8 s in five (2-vCPU VM, pinned to CPU 0,
2026-12-05), so the quick estimate is 18 s (was 12 s) and the standard and full
ones, whose set has 8,000-descriptor cases, 95 s (was 85 s; not measured).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.measure.scenarios.registry import Scenario, register

NAME = "micro"
RAW_JSON = "micro_benchmark.json"


@dataclass(frozen=True)
class MicroSettings:
    # Which set of descriptor counts bench.measure.micro runs.
    set_name: str
    # Seconds pytest-benchmark spends per case (None: bench.measure.micro's default).
    max_time_s: float | None = None
    # Expected seconds of the whole set.
    estimate_s: float = 60.0
    # Fresh processes that each time every count (the unit of the micro intervals).
    processes: int = 5

    def __post_init__(self) -> None:
        if self.processes < 1:
            raise ValueError(f"micro needs at least 1 process, not {self.processes}")


def measure(settings: MicroSettings, cfg: Any, raw_dir: Path) -> Any:
    """Run the micro benchmarks pinned to the server's CPU; return their table."""
    from bench.measure.micro import run_micro

    # The pytest subprocesses inherit this process's affinity, so bench moves
    # itself onto the server's CPU for the duration.
    previous = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {cfg.server_cpu})
    except OSError:
        previous = set()
    try:
        return run_micro(
            (raw_dir / RAW_JSON).resolve(),
            quick=settings.set_name in ("quick", "tiny"),
            set_name="tiny" if settings.set_name == "tiny" else None,
            max_time_s=settings.max_time_s,
            processes=settings.processes,
        )
    finally:
        if previous:
            os.sched_setaffinity(0, previous)


SCENARIO = register(
    Scenario(
        name=NAME,
        summary="one wait call in-process against N registered descriptors",
        presets={
            "quick": MicroSettings("quick", estimate_s=18.0),
            "standard": MicroSettings("standard", estimate_s=95.0),
            "full": MicroSettings("full", estimate_s=95.0),
            # Two processes: enough to exercise the layout, and the test suite stays fast.
            "tiny": MicroSettings("tiny", max_time_s=0.005, estimate_s=5.0, processes=2),
        },
        measure_in_process=measure,
        in_process_estimate_s=lambda s: s.estimate_s,
        charts=("wait_cost_vs_descriptors",),
    )
)
