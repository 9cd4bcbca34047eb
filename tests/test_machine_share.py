"""The lock the suite's pytest-xdist workers share (tests/fixtures/machine_share.py).

Two holders are two SuiteLock objects, each with its own open files, as two workers
have: flock(2) sets them against each other even within one process. A thread that
waits for the lock is seen in /proc/locks (a "->" line on the file's inode), so the
tests wait for that event, not for time to pass.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fixtures.machine_share import SuiteLock

# How long a waiter is looked for, and threads joined; how often it is looked for.
DEADLINE_S = 30.0
POLL_S = 0.005


@pytest.fixture
def locks(tmp_path: Path) -> Iterator[Callable[[], SuiteLock]]:
    """Factory of holders on one folder's lock; each one's files closed after the test."""
    made: list[SuiteLock] = []

    def make() -> SuiteLock:
        made.append(SuiteLock(tmp_path))
        return made[-1]

    yield make
    for lock in made:
        lock.close()


def _blocked_on(path: Path) -> int:
    """How many flock requests wait on this file now (lines "N: -> FLOCK ..." of /proc/locks)."""
    inode = os.stat(path).st_ino
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in lines if "->" in line and f":{inode} " in line)


def _until(condition: Callable[[], bool]) -> None:
    """Poll for the condition, DEADLINE_S at most; the test fails if it never came."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition() and time.monotonic() < deadline:
        time.sleep(POLL_S)
    assert condition(), "the waiter never showed in /proc/locks"


def _can(path: Path, mode: int) -> bool:
    """Could a third holder take the lock in this mode now?"""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_exclusive_waits_for_the_shared_holder_to_end(tmp_path: Path, locks) -> None:
    reader, writer = locks(), locks()
    released, got = threading.Event(), []

    def write() -> None:
        with writer.hold(exclusive=True):
            got.append(released.is_set())

    with reader.hold(exclusive=False):
        thread = threading.Thread(target=write)
        thread.start()
        _until(lambda: _blocked_on(tmp_path / "suite-machine.lock") == 1)
        released.set()
    thread.join(DEADLINE_S)
    assert got == [True]


def test_a_waiting_writer_goes_before_a_new_reader(tmp_path: Path, locks) -> None:
    first, writer, late = locks(), locks(), locks()
    order: list[str] = []

    def take(lock: SuiteLock, exclusive: bool, name: str) -> None:
        with lock.hold(exclusive=exclusive):
            order.append(name)

    with first.hold(exclusive=False):
        w = threading.Thread(target=take, args=(writer, True, "writer"))
        w.start()
        _until(lambda: _blocked_on(tmp_path / "suite-machine.lock") == 1)
        r = threading.Thread(target=take, args=(late, False, "reader"))
        r.start()
        # The late reader waits at the gate the writer holds, not beside it for the lock.
        _until(lambda: _blocked_on(tmp_path / "suite-gate.lock") == 1)
    w.join(DEADLINE_S)
    r.join(DEADLINE_S)
    assert order == ["writer", "reader"]


def test_two_shared_holders_that_both_want_it_alone_take_turns(locks) -> None:
    # Two workers, each in a test (shared), each starting a run that must be alone:
    # neither may wait for the other while holding the lock.
    a, b = locks(), locks()
    both_shared = threading.Barrier(2, timeout=DEADLINE_S)
    alone: list[str] = []
    inside = threading.Lock()

    def worker(lock: SuiteLock, name: str) -> None:
        with lock.hold(exclusive=False):
            both_shared.wait()
            with lock.hold(exclusive=True):
                assert inside.acquire(blocking=False), "both held the machine alone at once"
                alone.append(name)
                inside.release()

    threads = [threading.Thread(target=worker, args=(lk, n)) for lk, n in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)
    assert sorted(alone) == ["a", "b"] and not any(t.is_alive() for t in threads)


def test_holds_nest_and_come_back_down_to_shared(tmp_path: Path, locks) -> None:
    lock, path = locks(), tmp_path / "suite-machine.lock"
    with lock.hold(exclusive=False):
        assert _can(path, fcntl.LOCK_SH) and not _can(path, fcntl.LOCK_EX)
        with lock.hold(exclusive=True):
            assert not _can(path, fcntl.LOCK_SH)
            with lock.hold(exclusive=False):  # inside alone it stays alone
                assert not _can(path, fcntl.LOCK_SH)
            assert not _can(path, fcntl.LOCK_SH)
        assert _can(path, fcntl.LOCK_SH) and not _can(path, fcntl.LOCK_EX)
    assert _can(path, fcntl.LOCK_EX)
