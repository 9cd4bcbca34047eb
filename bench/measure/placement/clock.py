"""Each host's clock against ours: offset, round trip and the offset's uncertainty.

Cristian's method, repeated: read our clock (t0), ask the host for its clocks,
read ours again (t1). The host read its clock somewhere inside [t0, t1], so
its offset lies within ``host - (t0 + t1) / 2 +- (t1 - t0) / 2`` whatever the
delays on the way there and back; the round with the shortest round trip
gives the tightest bound, and that bound is the uncertainty recorded.

Two clocks per host: CLOCK_MONOTONIC, which schedules the window (it never
steps, so a time daemon's correction during a run cannot move a deadline),
and the wall clock, whose offset says how far the host's timestamps in the
raw documents are from ours (and whether its time is synchronised).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

# Rounds per measurement: at the start of a run, and before every trial (hosts'
# oscillators drift apart by up to tens of microseconds per second).
ROUNDS_FIRST = 16
ROUNDS_PER_TRIAL = 5


@dataclass(frozen=True)
class ClockOffset:
    """One host's clocks minus ours, from the round with the shortest round trip."""

    offset_mono_s: float
    offset_wall_s: float
    rtt_s: float
    uncertainty_s: float
    rtt_median_s: float
    rounds: int

    def to_host_ns(self, our_monotonic_ns: int) -> int:
        """Our CLOCK_MONOTONIC instant as the host's CLOCK_MONOTONIC reading."""
        return our_monotonic_ns + round(self.offset_mono_s * 1e9)

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 9) if isinstance(v, float) else v for k, v in asdict(self).items()}

    def describe(self) -> str:
        return (
            f"wall {self.offset_wall_s * 1e3:+.3f} ms +- {self.uncertainty_s * 1e3:.3f} ms "
            f"(round trip {self.rtt_s * 1e3:.3f} ms, best of {self.rounds})"
        )


def measure_offset(ask: Callable[[], tuple[int, int]], rounds: int = ROUNDS_FIRST) -> ClockOffset:
    """Offset of the host behind ``ask`` (which returns its monotonic_ns, time_ns)."""
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    samples = []
    for _ in range(rounds):
        w0, t0 = time.time_ns(), time.monotonic_ns()
        host_mono, host_wall = ask()
        t1, w1 = time.monotonic_ns(), time.time_ns()
        samples.append((t1 - t0, host_mono - (t0 + t1) / 2, host_wall - (w0 + w1) / 2))
    rtt, mono, wall = min(samples)
    return ClockOffset(
        offset_mono_s=mono / 1e9,
        offset_wall_s=wall / 1e9,
        rtt_s=rtt / 1e9,
        uncertainty_s=rtt / 2e9,
        rtt_median_s=statistics.median(s[0] for s in samples) / 1e9,
        rounds=rounds,
    )
