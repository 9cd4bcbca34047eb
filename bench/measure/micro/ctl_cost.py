"""pytest-benchmark: registering, modifying and unregistering one descriptor against N registered.

What an event loop pays per connection besides its wait calls: every new
connection is registered once and unregistered once, and a loop that waits
for writability modifies its interest twice per blocked write. The calls are
the event loop's own adapters (``servers.backends``), so each mechanism is
timed as the servers use it:

- select: ``SelectBackend`` adds to and discards from two Python sets (no
  system call; the kernel sees the sets only when select() is called);
- poll: ``select.poll``'s register / modify / unregister update a dict in
  CPython, and the next poll() rebuilds its whole pollfd array from that
  dict (``ufd_uptodate``), an O(N) cost these calls defer to the wait;
- epoll: ``epoll_ctl`` ADD / MOD / DEL, a system call on a red-black tree.

So "modify+wait" times one modify followed by one wait call (timeout 0, no
descriptor ready): the cost a change adds to the next wait, CPython's poll
rebuild included. One round times a batch of ``BATCH`` calls on different
descriptors (the table divides by the batch), so the clock's resolution
(~50 ns) stays out of a call of ~100 ns; "modify+wait" is one pair per round.
register / unregister rounds use ``BATCH`` spare socketpairs that a setup step
(not timed) unregisters or registers again between rounds.

Sets: ``BENCH_MICRO_SET=full`` (standard and full presets) and ``tiny``; the
quick set has no cases, so the quick preset's micro time is unchanged.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import pytest

from bench.measure.micro.wait_cost import Descriptors, open_socketpairs
from servers.backends import READ
from servers.backends.epoll_backend import EpollBackend
from servers.backends.poll_backend import PollBackend
from servers.backends.select_backend import SelectBackend
from servers.limits import FD_SETSIZE

BATCH = 32
OPERATIONS = ("register", "modify", "unregister", "modify+wait")
# Seconds per case at most (pytest-benchmark's --benchmark-max-time, if smaller),
# so the new cases add about half a minute to the standard preset's micro set.
CASE_TIME_S = 0.25
MIN_ROUNDS, MAX_ROUNDS = 5, 20_000

SETS: dict[str, dict[str, tuple[int, ...]]] = {
    "quick": {},
    "tiny": {"select": (16,), "poll": (16,), "epoll": (16,)},
    "full": {
        "select": (16, 256, 512, 1000),
        "poll": (16, 256, 1000, 4000, 8000),
        "epoll": (16, 256, 1000, 4000, 8000),
    },
}


def selected_set() -> str:
    name = os.environ.get("BENCH_MICRO_SET", "quick")
    return name if name in SETS else "quick"


def cases(set_name: str | None = None) -> list[tuple[str, int, str]]:
    chosen = SETS[set_name or selected_set()]
    return [(mech, n, op) for mech, ns in chosen.items() for n in ns for op in OPERATIONS]


def make_backend(mechanism: str) -> SelectBackend | PollBackend | EpollBackend:
    if mechanism == "select":
        return SelectBackend(fd_limit=FD_SETSIZE)
    if mechanism == "poll":
        return PollBackend()
    if mechanism == "epoll":
        return EpollBackend(edge_triggered=False)
    raise ValueError(f"unknown mechanism {mechanism!r}; use select, poll or epoll")


def plan(
    operation: str, backend: SelectBackend | PollBackend | EpollBackend, fds: Descriptors,
    spares: Descriptors,
) -> tuple[Callable[[], object], Callable[[], None] | None, int]:  # fmt: skip
    """(timed call, untimed setup before each round or None, calls per round)."""
    spare = spares.watched
    registered = {"spares": False}

    def register_spares() -> None:
        if not registered["spares"]:
            for fd in spare:
                backend.register(fd, READ)
            registered["spares"] = True

    def unregister_spares() -> None:
        if registered["spares"]:
            for fd in spare:
                backend.unregister(fd)
            registered["spares"] = False

    if operation == "register":
        return register_spares, unregister_spares, len(spare)
    if operation == "unregister":
        return unregister_spares, register_spares, len(spare)
    targets = fds.watched[:BATCH]
    if operation == "modify":

        def modify() -> None:
            for fd in targets:
                backend.modify(fd, READ)

        return modify, None, len(targets)
    if operation == "modify+wait":
        first = fds.watched[0]

        def modify_wait() -> object:
            backend.modify(first, READ)
            return backend.wait(0)

        return modify_wait, None, 1
    raise ValueError(f"unknown operation {operation!r}; use one of {OPERATIONS}")


def rounds_for(
    target: Callable[[], object], setup: Callable[[], None] | None, max_time_s: float
) -> int:
    """Rounds that fill about ``max_time_s``, from three untimed trial rounds."""
    spent = 0
    for _ in range(3):
        if setup is not None:
            setup()
        t0 = time.perf_counter_ns()
        target()
        spent += time.perf_counter_ns() - t0
    per_round_s = max(spent / 3 / 1e9, 1e-7)
    return int(min(MAX_ROUNDS, max(MIN_ROUNDS, max_time_s / per_round_s)))


@pytest.fixture
def descriptors(request: pytest.FixtureRequest) -> Iterator[Descriptors]:
    fds = open_socketpairs(request.param)
    yield fds
    fds.close()


@pytest.mark.parametrize(
    ("mechanism", "descriptors", "operation"),
    cases(),
    indirect=["descriptors"],
    ids=[f"{m}-{n}-{op}" for m, n, op in cases()],
)
def test_ctl_cost(
    benchmark, request: pytest.FixtureRequest, mechanism: str, descriptors: Descriptors,
    operation: str,
) -> None:  # fmt: skip
    backend = make_backend(mechanism)
    spares = open_socketpairs(BATCH)
    try:
        for fd in descriptors.watched:
            backend.register(fd, READ)
        target, setup, batch = plan(operation, backend, descriptors, spares)
        max_time = min(CASE_TIME_S, float(request.config.getoption("benchmark_max_time")))
        rounds = rounds_for(target, setup, max_time)
        benchmark.group = f"{mechanism}-{operation}"
        benchmark.extra_info.update(
            {
                "mechanism": mechanism,
                "n_registered": len(descriptors.watched),
                "ready": "none",
                "operation": operation,
                "batch": batch,
            }
        )
        got = benchmark.pedantic(target, setup=setup, rounds=rounds, iterations=1)
    finally:
        backend.close()
        spares.close()
    if operation == "modify+wait":
        # No descriptor was readable: the wait call timed a scan, not a wake-up.
        assert got == []
