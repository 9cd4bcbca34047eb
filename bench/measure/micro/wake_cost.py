"""A blocking wait woken by another thread, against N registered idle descriptors.

The wait-cost benchmark calls with timeout 0, so it never pays what a
blocking select() or poll() pays: before it sleeps, the kernel puts the
caller on the wait queue of every watched descriptor, and after the wake-up
it takes it off every one of them again and scans them all once more; epoll
keeps its callbacks on the descriptors between calls and sleeps on one
queue. Here a waiter thread blocks with no timeout on N idle socketpair ends
through the event loop's own adapter (``servers.backends``); once it is
asleep inside the wait system call, the main thread writes one byte into the
peer of one watched end. Two figures per round:

- ``wake``: wall time from just before the write to the waiter's return
  (``time.perf_counter_ns`` in both threads; the benchmark runs pinned to one
  CPU, so it includes the switch to the waiter and its re-taking of the GIL,
  the same for every mechanism);
- ``blocking-wait-cpu``: the waiter thread's CPU time for the whole blocking
  call (``time.thread_time_ns``: set-up before the sleep, the wake-up and
  tear-down after it; the sleep itself costs no CPU).

"Asleep inside the wait" is read from ``/proc/self/task/<tid>/``: state S
(sleeping) in a system call other than the futex the waiter idles on between
rounds. Where those files cannot be read, the main thread waits 1 ms instead.
The times come from these clocks, not pytest-benchmark's (which would time
the hand-back to the main thread too); the table takes them from the
benchmark's ``extra_info``.

Sets: ``BENCH_MICRO_SET=full`` (standard and full presets) and ``tiny``; the
quick set has no cases.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.measure.micro.ctl_cost import SETS, make_backend, selected_set
from bench.measure.micro.wait_cost import Descriptors, open_socketpairs, summary_us
from servers.backends import READ

# Seconds per case at most (pytest-benchmark's --benchmark-max-time, if smaller).
CASE_TIME_S = 0.25
MIN_ROUNDS, MAX_ROUNDS = 5, 2000
ASLEEP_TIMEOUT_S = 2.0
FALLBACK_SLEEP_S = 1e-3


def cases(set_name: str | None = None) -> list[tuple[str, int]]:
    chosen = SETS[set_name or selected_set()]
    return [(mech, n) for mech, ns in chosen.items() for n in ns]


def task_state(tid: int) -> tuple[str, str] | None:
    """(scheduler state letter, first field of the syscall file) of a thread, or None."""
    base = Path(f"/proc/self/task/{tid}")
    try:
        stat = (base / "stat").read_text()
        syscall = (base / "syscall").read_text().split()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0], (syscall[0] if syscall else "")


class Waiter(threading.Thread):
    """Blocks in the adapter's wait(None) once per ``go``; records when it returned."""

    def __init__(self, backend: Any, wake_fd: int) -> None:
        super().__init__(daemon=True)
        self.backend, self.wake_fd = backend, wake_fd
        self.go, self.done, self.started_up = (
            threading.Event(),
            threading.Event(),
            threading.Event(),
        )
        self.stop = False
        self.tid = 0
        self.returned_ns = self.cpu_ns = 0
        self.events: list[tuple[int, int]] = []

    def run(self) -> None:
        self.tid = threading.get_native_id()
        self.started_up.set()
        while True:
            self.go.wait()
            self.go.clear()
            if self.stop:
                return
            cpu0 = time.thread_time_ns()
            events = self.backend.wait(None)
            self.returned_ns = time.perf_counter_ns()
            self.cpu_ns = time.thread_time_ns() - cpu0
            self.events = events
            os.read(self.wake_fd, 1)  # idle again for the next round
            self.done.set()


def wait_until_asleep(tid: int, idle_syscall: str | None) -> None:
    """Return once the waiter sleeps in a system call other than its idle futex."""
    if idle_syscall is None:
        time.sleep(FALLBACK_SLEEP_S)
        return
    deadline = time.monotonic() + ASLEEP_TIMEOUT_S
    while time.monotonic() < deadline:
        state = task_state(tid)
        if state is not None and state[0] == "S" and state[1] not in (idle_syscall, "running"):
            return
        time.sleep(10e-6)  # lets the waiter take the GIL and reach its wait
    raise RuntimeError("the waiter never went to sleep inside its wait call")


def measure(backend: Any, fds: Descriptors, max_time_s: float) -> dict[str, list[int]]:
    """Rounds of (write -> waiter returns) latency and waiter CPU, in nanoseconds."""
    wake_fd, peer = fds.watched[0], fds.peers[0]
    waiter = Waiter(backend, wake_fd)
    waiter.start()
    waiter.started_up.wait()
    time.sleep(1e-3)  # let it reach go.wait()
    idle = task_state(waiter.tid)
    idle_syscall = idle[1] if idle is not None and idle[0] == "S" else None
    wake: list[int] = []
    cpu: list[int] = []
    deadline = time.monotonic() + max_time_s
    try:
        while len(wake) < MAX_ROUNDS and (len(wake) < MIN_ROUNDS or time.monotonic() < deadline):
            waiter.done.clear()
            waiter.go.set()
            wait_until_asleep(waiter.tid, idle_syscall)
            t0 = time.perf_counter_ns()
            os.write(peer, b"x")
            if not waiter.done.wait(ASLEEP_TIMEOUT_S):
                raise RuntimeError("the waiter did not return after the write")
            assert [fd for fd, _ in waiter.events] == [wake_fd]
            wake.append(waiter.returned_ns - t0)
            cpu.append(waiter.cpu_ns)
    finally:
        waiter.stop = True
        waiter.go.set()
        waiter.join(ASLEEP_TIMEOUT_S)
    return {"wake": wake, "blocking-wait-cpu": cpu}


@pytest.fixture
def descriptors(request: pytest.FixtureRequest) -> Iterator[Descriptors]:
    fds = open_socketpairs(request.param)
    yield fds
    fds.close()


@pytest.mark.parametrize(
    ("mechanism", "descriptors"), cases(), indirect=["descriptors"],
    ids=[f"{m}-{n}-wake" for m, n in cases()],
)  # fmt: skip
def test_wake_cost(
    benchmark, request: pytest.FixtureRequest, mechanism: str, descriptors: Descriptors
) -> None:
    backend = make_backend(mechanism)
    try:
        for fd in descriptors.watched:
            backend.register(fd, READ)
        max_time = min(CASE_TIME_S, float(request.config.getoption("benchmark_max_time")))
        samples = measure(backend, descriptors, max_time)
    finally:
        backend.close()
    benchmark.group = f"{mechanism}-wake"
    benchmark.extra_info.update(
        {
            "mechanism": mechanism,
            "n_registered": len(descriptors.watched),
            "rows": [
                {"operation": op, "ready": "woken", "stats_us": summary_us(values)}
                for op, values in samples.items()
            ],
        }
    )
    # pytest-benchmark needs one timed call to write the entry; the figures are above.
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
