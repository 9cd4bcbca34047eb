"""pytest-benchmark: the in-process cost of ONE wait call with N registered descriptors.

Reproduces the classic measurement (Kerrisk, TLPI table 63-9; libevent's
test/bench.c): N socketpairs, the wait call watches one end of each, and one
(or every) watched end is readable because a byte was written into its peer
once. Level-triggered readiness keeps it readable, so every round sees the
same state. Timeout 0: we time the call, not sleep.

select gets int descriptors (socket objects would double its cost with a
fileno() per object per call) and every watched descriptor must be numbered
below FD_SETSIZE (1024), or select.select raises ValueError. So the watched
ends are packed into the lowest numbers and the peers are moved above 1024.

Sets: ``BENCH_MICRO_SET=quick`` (default; what plain ``pytest`` collects),
``tiny`` (the same wait cases) or ``full``. Run directly with
``pytest bench/measure/micro/test_wait_cost.py --benchmark-enable -o addopts=``.
"""

from __future__ import annotations

import fcntl
import os
import resource
import select
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from servers.limits import FD_SETSIZE

PEER_FD_FLOOR = 1100  # peers live above select's range, out of the way of watched ends

SETS: dict[str, dict[str, tuple[int, ...]]] = {
    # Five counts per mechanism at least: a slope's interval from three points
    # has one degree of freedom and is too wide to call anything. poll and epoll
    # have eight, weighted to the ends of the range: with five (16-4,000) epoll's
    # 95% growth interval was about +-17% wide, and claim 3's +20% rule flipped
    # between runs (README: 4 of 5 default runs). Eight counts make it about 0.6x
    # as wide by the fit's arithmetic alone (t quantile 2.45 at six degrees of
    # freedom against 3.18 at three, and more spread in N), for ~3 s more; five
    # default runs with them still flipped claim 3 (2 SUPPORTED, 3 INCONCLUSIVE).
    "quick": {
        "select": (16, 128, 256, 512, 1000),
        "poll": (16, 32, 64, 256, 1000, 2000, 3000, 4000),
        "epoll": (16, 32, 64, 256, 1000, 2000, 3000, 4000),
    },
    # The tiny preset's set (the test suite): the quick wait cases, and one count of
    # each case in test_ctl_cost.py and test_wake_cost.py.
    "tiny": {
        "select": (16, 128, 256, 512, 1000),
        "poll": (16, 256, 1000, 2000, 4000),
        "epoll": (16, 256, 1000, 2000, 4000),
    },
    "full": {
        "select": (16, 64, 256, 512, 1000),
        "poll": (16, 64, 256, 1000, 2000, 4000, 8000),
        "epoll": (16, 64, 256, 1000, 2000, 4000, 8000),
    },
}


def selected_set() -> str:
    name = os.environ.get("BENCH_MICRO_SET", "quick")
    if name not in SETS:
        raise ValueError(f"BENCH_MICRO_SET={name!r} is unknown; use one of {sorted(SETS)}")
    return name


def cases(set_name: str | None = None) -> list[tuple[str, int, str]]:
    chosen = SETS[set_name or selected_set()]
    return [(mech, n, ready) for mech, ns in chosen.items() for n in ns for ready in ("one", "all")]


@dataclass
class Descriptors:
    """N watched descriptors (low numbers) and their peers (high numbers)."""

    watched: list[int]
    peers: list[int]

    def close(self) -> None:
        for fd in self.watched + self.peers:
            os.close(fd)


def open_socketpairs(n: int) -> Descriptors:
    """N socketpairs; watched ends packed into the lowest free numbers."""
    need = 2 * n + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need <= hard or (soft < need and hard == resource.RLIM_INFINITY):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft < need + PEER_FD_FLOOR:
        pytest.skip(
            f"RLIMIT_NOFILE is {soft}; {n} socketpairs need about {need + PEER_FD_FLOOR}: "
            f"raise it with `ulimit -n {need + PEER_FD_FLOOR + 100}`"
        )
    watched: list[int] = []
    peers: list[int] = []
    try:
        for _ in range(n):
            a, b = socket.socketpair()
            fa, fb = a.detach(), b.detach()
            # Move the peer above the watched range; its old number is reused by the next pair.
            peers.append(fcntl.fcntl(fb, fcntl.F_DUPFD_CLOEXEC, PEER_FD_FLOOR))
            os.close(fb)
            watched.append(fa)
    except BaseException:
        Descriptors(watched, peers).close()
        raise
    return Descriptors(watched, peers)


def make_ready(fds: Descriptors, ready: str) -> int:
    """Write one byte into the peer of the first (or every) watched end; returns how many."""
    targets = fds.peers[:1] if ready == "one" else fds.peers
    for fd in targets:
        os.write(fd, b"x")
    return len(targets)


def wait_call(mechanism: str, watched: list[int]) -> tuple[Callable[[], int], Callable[[], None]]:
    """One wait call with timeout 0 returning the number of ready descriptors, and a closer."""
    if mechanism == "select":
        if max(watched) >= FD_SETSIZE:
            pytest.skip(
                f"select needs descriptors below {FD_SETSIZE}; this process already holds "
                f"too many to place {len(watched)} there (highest is {max(watched)})"
            )
        empty: list[int] = []
        return (lambda: len(select.select(watched, empty, empty, 0)[0])), lambda: None
    if mechanism == "poll":
        poller = select.poll()
        for fd in watched:
            poller.register(fd, select.POLLIN)
        return (lambda: len(poller.poll(0))), lambda: None
    if mechanism == "epoll":
        ep = select.epoll(len(watched))
        for fd in watched:
            ep.register(fd, select.EPOLLIN)
        maxevents = len(watched)
        return (lambda: len(ep.poll(0, maxevents))), ep.close
    raise ValueError(f"unknown mechanism {mechanism!r}; use select, poll or epoll")


@pytest.fixture
def descriptors(request: pytest.FixtureRequest) -> Iterator[Descriptors]:
    fds = open_socketpairs(request.param)
    yield fds
    fds.close()


@pytest.mark.parametrize(
    ("mechanism", "descriptors", "ready"),
    cases(),
    indirect=["descriptors"],
    ids=[f"{m}-{n}-{r}" for m, n, r in cases()],
)
def test_wait_cost(benchmark, mechanism: str, descriptors: Descriptors, ready: str) -> None:
    expected = make_ready(descriptors, ready)
    call, close = wait_call(mechanism, descriptors.watched)
    try:
        benchmark.group = f"{mechanism}-{ready}"
        benchmark.extra_info.update(
            {"mechanism": mechanism, "n_registered": len(descriptors.watched), "ready": ready}
        )
        got = benchmark(call)
    finally:
        close()
    # The call must have seen exactly the readiness we set up, or it timed the wrong thing.
    assert got == expected
