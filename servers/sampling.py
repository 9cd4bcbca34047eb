"""Which wait calls read the thread CPU clock, and what the reading itself costs.

The CPU time a wait call spends in the kernel is the number the claims are
about, but reading a thread CPU clock is a real system call (about 1 us,
against ~50 ns for the vDSO wall clock), so only a sample of calls reads it.

Random, not periodic. Reading every 8th call would lock onto the load's own
rhythm (8 active connections answer in turn, so call k and call k+8 see the
same phase). Each call is instead sampled with probability 1/8, independently,
from a seeded PRNG: the gaps between sampled calls are geometric, so the hot
path only decrements a counter and draws a new gap on a sampled call. The
seed is recorded (READY line and stats: `wait_cpu_sample_seed`), so a run can
be replayed with `ServerConfig.wait_sample_seed`.

The reading's own cost. The two thread-clock reads and the wall-clock pair
between them run inside the sampled interval, so each sampled call's CPU time
includes them. `calibrate_clock_pair()` times that same sequence with nothing
in between, 2,000 times at start-up, and the median is recorded as
`wait_cpu_clock_overhead_ns`. A consumer subtracts it once per sampled call:

    net CPU per sampled wait call =
        wait_cpu_ns / wait_cpu_samples - wait_cpu_clock_overhead_ns

(`servers.stats.StatsDelta.wait_cpu_ns_net` does this over a window).
"""

from __future__ import annotations

import math
import os
import random
import statistics
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from servers.config import ServerConfig
    from servers.stats import ServerStats

SAMPLE_PROBABILITY = 1 / 8
_LOG_MISS = math.log(1.0 - SAMPLE_PROBABILITY)
CALIBRATION_PAIRS = 2000


def new_seed() -> int:
    """A fresh 32-bit seed from the OS (recorded, so the sample can be replayed)."""
    return int.from_bytes(os.urandom(4), "little")


class CallSampler:
    """Bernoulli(SAMPLE_PROBABILITY) per call, drawn as geometric gaps from a seeded PRNG.

    Use: `countdown = sampler.next_gap()`; on each call `countdown -= 1`; the call
    with `countdown == 0` is sampled and draws the next gap.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._random = random.Random(seed).random

    def next_gap(self) -> int:
        """Calls until the next sampled one, this one included (>= 1)."""
        # Inverse transform of the geometric distribution; 1 - u lies in (0, 1].
        return 1 + int(math.log(1.0 - self._random()) / _LOG_MISS)


def calibrate_clock_pair(pairs: int = CALIBRATION_PAIRS) -> int:
    """Median CPU nanoseconds of the sampled path's clock reads with no wait between them.

    The same statements, in the same order, as the sampled branch of the
    event loop (`servers.eventloop`) and the asyncio selector.
    """
    cpu_clock = time.thread_time_ns
    clock = time.perf_counter_ns
    costs = []
    for _ in range(pairs):
        c0 = cpu_clock()
        t0 = clock()
        t1 = clock()
        costs.append(cpu_clock() - c0)
    del t0, t1
    return int(statistics.median(costs))


def start_sampling(config: ServerConfig, stats: ServerStats) -> CallSampler:
    """Seed the sampler (config.wait_sample_seed, or a fresh one), calibrate the clock
    pair on this CPU, and record both in `stats` (and so in READY and every snapshot)."""
    seed = new_seed() if config.wait_sample_seed is None else config.wait_sample_seed
    stats.wait_cpu_sample_seed = seed
    stats.wait_cpu_clock_overhead_ns = calibrate_clock_pair()
    return CallSampler(seed)
