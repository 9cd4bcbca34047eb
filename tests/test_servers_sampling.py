"""Wait-cost sampling (issue 9, item 7): the thread CPU clock is read on a random, seeded
1-in-8 subset of wait calls, not on every 8th call, and the clock reads' own cost is
calibrated at start-up and recorded for the consumer to subtract."""

from __future__ import annotations

import itertools
import signal
import socket
import time
from collections import Counter

import pytest
from test_servers_support import WAIT_INSTRUMENTED_BACKENDS, assert_serves, backend_params

from servers.config import ServerConfig
from servers.eventloop import EventLoopServer
from servers.limits import STOP_SIGNALS
from servers.sampling import SAMPLE_PROBABILITY, CallSampler, calibrate_clock_pair
from servers.stats import ServerStats, StatsSnapshot

CALLS = 80_000


def _sampled_indices(seed: int, calls: int = CALLS) -> list[int]:
    """The 1-based call numbers a sampler picks, exactly as the loop's countdown does."""
    sampler = CallSampler(seed)
    picked = []
    countdown = sampler.next_gap()
    for call in range(1, calls + 1):
        countdown -= 1
        if not countdown:
            picked.append(call)
            countdown = sampler.next_gap()
    return picked


def _assert_random_one_in_eight(picked: list[int], calls: int) -> None:
    # Binomial(calls, 1/8): the sample fraction lies within 6 standard deviations.
    expected = calls * SAMPLE_PROBABILITY
    sd = (calls * SAMPLE_PROBABILITY * (1 - SAMPLE_PROBABILITY)) ** 0.5
    assert abs(len(picked) - expected) < 6 * sd, (len(picked), expected)
    # Not periodic: every residue mod 8 is sampled, each about as often as the others.
    residues = Counter(call % 8 for call in picked)
    assert len(residues) == 8, residues
    assert max(residues.values()) < 1.5 * min(residues.values()), residues
    gaps = Counter(b - a for a, b in itertools.pairwise(picked))
    assert len(gaps) > 20 and gaps[1] > gaps[8], gaps  # geometric, not a fixed stride


def test_sampler_is_random_one_in_eight_and_seeded() -> None:
    picked = _sampled_indices(seed=2024)
    _assert_random_one_in_eight(picked, CALLS)
    assert _sampled_indices(seed=2024) == picked, "the same seed must replay the same sample"
    assert _sampled_indices(seed=2025) != picked


class _CountingBackend:
    """A backend whose wait returns at once and stops the server after `calls` calls."""

    name = "counting"
    edge_triggered = False
    fd_limit = None

    def __init__(self, calls: int) -> None:
        self.calls = 0
        self.limit = calls
        self.server: EventLoopServer | None = None

    def register(self, fd: int, mask: int) -> None: ...
    def modify(self, fd: int, mask: int) -> None: ...
    def unregister(self, fd: int) -> None: ...
    def close(self) -> None: ...

    def wait(self, timeout: float | None) -> list[tuple[int, int]]:
        self.calls += 1
        if self.calls >= self.limit:
            assert self.server is not None
            self.server.stopping = True
        return []


def test_event_loop_samples_random_calls(monkeypatch) -> None:
    """The real loop: the calls on which it reads the thread CPU clock are not periodic."""
    calls = 40_000
    stats = ServerStats("counting", "http", wait_instrumented=True)
    backend = _CountingBackend(calls)
    listener = socket.create_server(("127.0.0.1", 0))
    server = EventLoopServer(ServerConfig(backend="epoll", wait_sample_seed=99), backend,
                             listener, stats)  # fmt: skip
    backend.server = server
    assert stats.wait_cpu_sample_seed == 99
    assert isinstance(stats.wait_cpu_clock_overhead_ns, int)
    reads: list[int] = []

    def cpu_clock() -> int:  # read once before and once after each sampled wait
        reads.append(backend.calls)
        return 0

    monkeypatch.setattr(time, "thread_time_ns", cpu_clock)
    handlers = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    try:
        server.run()
    finally:  # run() installed the server's own SIGTERM/SIGINT handlers in pytest's process
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    picked = reads[1::2]  # the read after the wait: backend.calls is that call's number
    assert reads[0::2] == [n - 1 for n in picked]
    assert stats.wait_calls == calls and stats.wait_cpu_samples == len(picked)
    _assert_random_one_in_eight(picked, calls)
    assert picked == _sampled_indices(99, calls), "the loop follows its recorded seed"


def test_calibration_is_a_positive_number_of_nanoseconds() -> None:
    overhead_ns = calibrate_clock_pair(pairs=200)
    assert type(overhead_ns) is int and overhead_ns > 0


@pytest.mark.parametrize("backend", backend_params())
def test_seed_and_calibration_are_recorded(start_server, backend: str) -> None:
    srv = start_server(backend, "http")
    assert_serves(srv.port, "http")
    stats = srv.stats()
    ready = srv.ready_info
    if backend in WAIT_INSTRUMENTED_BACKENDS:
        assert type(stats.wait_cpu_sample_seed) is int
        assert type(stats.wait_cpu_clock_overhead_ns) is int
        assert stats.wait_cpu_clock_overhead_ns > 0
    else:
        assert stats.wait_cpu_sample_seed is None
        assert stats.wait_cpu_clock_overhead_ns is None
    for key in ("wait_cpu_sample_seed", "wait_cpu_clock_overhead_ns"):
        assert ready[key] == getattr(stats, key), key


@pytest.mark.parametrize("backend", backend_params(["poll", "asyncio"]))
def test_a_given_seed_is_used_and_recorded(start_server, backend: str) -> None:
    srv = start_server(backend, "echo", wait_sample_seed=12345)
    assert srv.ready_info["wait_cpu_sample_seed"] == 12345
    assert srv.stats().wait_cpu_sample_seed == 12345
    assert ServerConfig(backend="poll", wait_sample_seed=1).wait_sample_seed == 1
    for seed in (-1, 2**64):  # the sampling PRNG's state is 64 bits
        with pytest.raises(ValueError, match="wait_sample_seed"):
            ServerConfig(backend="poll", wait_sample_seed=seed)
        with pytest.raises(ValueError, match="2\\*\\*64"):
            CallSampler(seed)


def test_net_wait_cpu_subtracts_the_calibration_per_sampled_call() -> None:
    stats = ServerStats("poll", "http", wait_instrumented=True)
    stats.wait_cpu_clock_overhead_ns = 600
    before = StatsSnapshot.from_json(stats.snapshot())
    stats.wait_cpu_ns, stats.wait_cpu_samples = 10_000, 4
    window = before.delta(StatsSnapshot.from_json(stats.snapshot()))
    assert window.wait_cpu_ns_net == 10_000 - 4 * 600
    stats.wait_cpu_clock_overhead_ns = None
    untimed = StatsSnapshot.from_json(stats.snapshot())
    assert untimed.delta(untimed).wait_cpu_ns_net is None
