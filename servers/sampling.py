"""Which wait calls read the thread CPU clock, and what the reading itself costs.

The CPU time a wait call spends in the kernel is the number the claims are
about, but reading a thread CPU clock is a real system call (about 1 us,
against ~50 ns for the vDSO wall clock), so only a sample of calls reads it.

Random, not periodic. Reading every 8th call would lock onto the load's own
rhythm (8 active connections answer in turn, so call k and call k+8 see the
same phase). Each call is instead sampled with probability 1/8, independently,
from a seeded PRNG: the gaps between sampled calls are geometric, so the hot
path only decrements a counter and draws a new gap on a sampled call.

The PRNG is splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom
number generators", OOPSLA 2014; the seeder of the xoshiro family): 64 bits of
state, an add and two xor-shift-multiply rounds per draw, and it passes
TestU01's BigCrush. The draws only have to be independent of the load's rhythm,
which a generator of that quality gives; it is chosen because the C twins
(servers/c/sampling.c) implement the same few lines and so sample the same calls
for a seed, where matching `random.Random` meant porting MT19937 and CPython's
seeding. The seed is recorded (READY line and stats: `wait_cpu_sample_seed`), so a run can
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
import statistics
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from servers.config import ServerConfig
    from servers.stats import ServerStats

SAMPLE_PROBABILITY = 1 / 8
_LOG_MISS = math.log(1.0 - SAMPLE_PROBABILITY)
CALIBRATION_PAIRS = 2000
SEED_LIMIT = 1 << 64  # seeds are 0 <= seed < SEED_LIMIT: splitmix64's whole state
_MASK64 = SEED_LIMIT - 1
_GOLDEN_GAMMA = 0x9E3779B97F4A7C15
_UNIT = 2.0**-53


def splitmix64(state: int) -> tuple[int, int]:
    """(next state, 64-bit output) of splitmix64 from `state` (0 <= state < 2**64)."""
    state = (state + _GOLDEN_GAMMA) & _MASK64
    z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return state, z ^ (z >> 31)


def new_seed() -> int:
    """A fresh 32-bit seed from the OS (recorded, so the sample can be replayed)."""
    return int.from_bytes(os.urandom(4), "little")


class CallSampler:
    """Bernoulli(SAMPLE_PROBABILITY) per call, drawn as geometric gaps from splitmix64.

    Use: `countdown = sampler.next_gap()`; on each call `countdown -= 1`; the call
    with `countdown == 0` is sampled and draws the next gap.
    """

    def __init__(self, seed: int) -> None:
        if not 0 <= seed < SEED_LIMIT:
            raise ValueError(f"a sampling seed must be 0 <= seed < 2**64, got {seed}")
        self.seed = seed
        self._state = seed

    def next_gap(self) -> int:
        """Calls until the next sampled one, this one included (>= 1)."""
        self._state, z = splitmix64(self._state)
        # u: the top 53 bits as a double in [0, 1), so 1 - u lies in (0, 1]; then the
        # inverse transform of the geometric distribution.
        return 1 + int(math.log(1.0 - (z >> 11) * _UNIT) / _LOG_MISS)


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
