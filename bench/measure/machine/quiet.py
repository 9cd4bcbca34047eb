"""Is the machine quiet enough to measure? Load and steal, read before a run starts.

A run on a busy machine measures its neighbours: cells of a reference run that
started at load 1.21 on 2 CPUs came out 3-4x slower than on a quiet machine.
The rule, fixed before the data: quiet means that over a one-second sample
(``STEAL_SAMPLE_S``; the tiny preset, whose numbers mean nothing, samples a quarter of it)
of /proc/stat the CPUs were busy at most ``MAX_LOAD_PER_CPU`` of the time (the
instantaneous load per CPU) and at most ``MAX_STEAL_FRACTION`` of CPU time was
stolen by the hypervisor. The 1-minute load average is recorded beside it but
does not decide: it decays over minutes, so it still counts the previous run
of a series long after that run has ended.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.measure.machine.proc_stat import read_machine_cpu

MAX_LOAD_PER_CPU = 0.5
MAX_STEAL_FRACTION = 0.05
STEAL_SAMPLE_S = 1.0
POLL_S = 2.0


@dataclass(frozen=True)
class Quietness:
    busy_per_cpu: float | None  # share of CPU time not idle over the sample
    steal_fraction: float | None
    load_1min: float
    cpus: int
    sample_s: float = STEAL_SAMPLE_S

    @property
    def quiet(self) -> bool:
        busy_ok = self.busy_per_cpu is None or self.busy_per_cpu <= MAX_LOAD_PER_CPU
        steal_ok = self.steal_fraction is None or self.steal_fraction <= MAX_STEAL_FRACTION
        return busy_ok and steal_ok

    def describe(self) -> str:
        def pct(x: float | None) -> str:
            return "unknown" if x is None else f"{x:.0%}"

        return (
            f"CPUs busy {pct(self.busy_per_cpu)} of a {self.sample_s:g} s sample (quiet means <= "
            f"{MAX_LOAD_PER_CPU:.0%}), steal {pct(self.steal_fraction)} (quiet means <= "
            f"{MAX_STEAL_FRACTION:.0%}); 1-minute load average {self.load_1min:.2f} on "
            f"{self.cpus} CPUs"
        )

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "busy_per_cpu": self.busy_per_cpu,
            "steal_fraction": self.steal_fraction,
            "load_1min": self.load_1min,
            "cpus": self.cpus,
            "sample_s": self.sample_s,
            "quiet": self.quiet,
        }


def measure_quietness(sample_s: float = STEAL_SAMPLE_S) -> Quietness:
    before = read_machine_cpu()
    time.sleep(sample_s)
    after = read_machine_cpu()
    busy = steal = None
    if before is not None and after is not None and after.total_s > before.total_s:
        total = after.total_s - before.total_s
        # From the busy and steal counters, which only grow: iowait (inside idle_s) can
        # go backwards on a multi-CPU machine (proc(5)), and 1 - idle / total then read
        # -9.0 for a 0.05 s sample here; the clamp bounds what that does to the total.
        busy = min(1.0, max(0.0, (after.busy_s - before.busy_s) / total))
        steal = min(1.0, max(0.0, (after.steal_s - before.steal_s) / total))
    return Quietness(busy, steal, os.getloadavg()[0], len(os.sched_getaffinity(0)), sample_s)


def wait_for_quiet(
    max_wait_s: float, note: Callable[[str], None] = lambda _: None,
    sample_s: float = STEAL_SAMPLE_S,
) -> tuple[Quietness, float]:  # fmt: skip
    """Sample until quiet or ``max_wait_s`` has passed; returns the last sample and the wait."""
    t0 = time.monotonic()
    sample = measure_quietness(sample_s)
    while not sample.quiet and time.monotonic() - t0 < max_wait_s:
        note(f"waiting for a quiet machine: {sample.describe()}")
        time.sleep(POLL_S)
        sample = measure_quietness(sample_s)
    return sample, time.monotonic() - t0
