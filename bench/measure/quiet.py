"""Is the machine quiet enough to measure? Load and steal, read before a run starts.

A run on a busy machine measures its neighbours: cells of a reference run that
started at load 1.21 on 2 CPUs came out 3-4x slower than on a quiet machine.
The rule, fixed before the data: quiet means a 1-minute load average at most
``MAX_LOAD_PER_CPU`` per CPU and at most ``MAX_STEAL_FRACTION`` of CPU time
stolen by the hypervisor over a one-second sample.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_LOAD_PER_CPU = 0.5
MAX_STEAL_FRACTION = 0.05
STEAL_SAMPLE_S = 1.0
POLL_S = 2.0


@dataclass(frozen=True)
class Quietness:
    load_1min: float
    cpus: int
    steal_fraction: float | None

    @property
    def load_per_cpu(self) -> float:
        return self.load_1min / self.cpus

    @property
    def quiet(self) -> bool:
        steal_ok = self.steal_fraction is None or self.steal_fraction <= MAX_STEAL_FRACTION
        return self.load_per_cpu <= MAX_LOAD_PER_CPU and steal_ok

    def describe(self) -> str:
        steal = "unknown" if self.steal_fraction is None else f"{self.steal_fraction:.1%}"
        return (
            f"load {self.load_1min:.2f} on {self.cpus} CPUs ({self.load_per_cpu:.2f} per CPU, "
            f"quiet means <= {MAX_LOAD_PER_CPU}), steal {steal} (quiet means <= "
            f"{MAX_STEAL_FRACTION:.0%})"
        )


def _cpu_times() -> tuple[int, int] | None:
    """(steal, total) jiffies of all CPUs from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    steal = fields[7] if len(fields) > 7 else 0
    return steal, sum(fields[:8])


def measure_quietness(sample_s: float = STEAL_SAMPLE_S) -> Quietness:
    before = _cpu_times()
    time.sleep(sample_s)
    after = _cpu_times()
    steal = None
    if before is not None and after is not None and after[1] > before[1]:
        steal = (after[0] - before[0]) / (after[1] - before[1])
    return Quietness(os.getloadavg()[0], len(os.sched_getaffinity(0)), steal)


def wait_for_quiet(
    max_wait_s: float, note: Callable[[str], None] = lambda _: None
) -> tuple[Quietness, float]:
    """Sample until quiet or ``max_wait_s`` has passed; returns the last sample and the wait."""
    t0 = time.monotonic()
    sample = measure_quietness()
    while not sample.quiet and time.monotonic() - t0 < max_wait_s:
        note(f"waiting for a quiet machine: {sample.describe()}")
        time.sleep(POLL_S)
        sample = measure_quietness()
    return sample, time.monotonic() - t0
