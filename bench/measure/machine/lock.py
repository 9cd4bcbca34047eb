"""One benchmark per machine: a lock every measuring ``bench run`` holds.

Two runs at once pin their servers to the same CPU and measure each other:
two default runs started 5 s apart read closed-loop epoll at 87.6k and 44.4k
requests/s where one alone read 95.4k, and neither said so. So a run takes an
exclusive flock(2) on one file before it measures. The kernel drops a flock
when the last descriptor of its open file closes, which a dead process's do:
a run that crashed or was SIGKILLed never blocks the next. The descriptor is
close-on-exec (Python's default), so no server or load worker inherits it and
keeps the lock after bench has gone.

The file holds its holder (run id once known, PID, start time, preset) as JSON,
so a second run can say whom it waits for. The holder is a hint, the flock is
the truth: a file left by a dead run holds a stale holder and no lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Tests point this at a private file, so they neither wait for nor block a real run.
LOCK_PATH_ENV = "SELECTBENCH_LOCK"
# /run/lock is the FHS place for lock files and is world-writable on Debian and Fedora;
# /tmp where it is missing.
LOCK_DIRS = ("/run/lock", "/tmp")
LOCK_NAME = "selectbench.lock"
POLL_S = 0.2
# A waiting run says again whom it waits for this often, so a console left open shows
# it is alive and how long the other one has run by now.
REMIND_EVERY_S = 30.0


def lock_path() -> Path:
    """The machine's lock file: $SELECTBENCH_LOCK, else /run/lock/..., else /tmp/..."""
    override = os.environ.get(LOCK_PATH_ENV)
    if override:
        return Path(override)
    for folder in LOCK_DIRS:
        if os.access(folder, os.W_OK | os.X_OK):
            return Path(folder) / LOCK_NAME
    return Path(LOCK_DIRS[-1]) / LOCK_NAME


@dataclass(frozen=True)
class Holder:
    """Who holds the lock, as written in the lock file."""

    pid: int
    started_unix: float
    preset: str
    run_id: str | None = None

    def describe(self, now_unix: float | None = None) -> str:
        ran = max(0.0, (time.time() if now_unix is None else now_unix) - self.started_unix)
        started = dt.datetime.fromtimestamp(self.started_unix, dt.UTC).strftime("%H:%M:%S UTC")
        run = f"run {self.run_id}" if self.run_id else "a run not yet named"
        return (
            f"{run} (PID {self.pid}, preset {self.preset}, started {started}, "
            f"running for {_duration(ran)})"
        )

    @classmethod
    def from_text(cls, text: str) -> Holder | None:
        try:
            doc: Any = json.loads(text)
            return cls(
                pid=int(doc["pid"]),
                started_unix=float(doc["started_unix"]),
                preset=str(doc["preset"]),
                run_id=None if doc.get("run_id") is None else str(doc["run_id"]),
            )
        except (ValueError, KeyError, TypeError):
            return None  # empty (being written) or not ours


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


class MachineBusy(RuntimeError):
    """Another run holds the lock and this one was asked not to wait."""

    def __init__(self, path: Path, holder: Holder | None):
        self.path, self.holder = path, holder
        who = holder.describe() if holder else "another bench run (its details unreadable)"
        super().__init__(f"another benchmark is measuring on this machine: {who}; lock {path}")


class MachineLock:
    """The held lock; ``record`` updates the holder, ``release`` (or exit) frees it."""

    def __init__(self, path: Path, fd: int, holder: Holder):
        self.path, self._fd, self.holder = path, fd, holder
        self.record()

    def record(self, run_id: str | None = None) -> None:
        """Write the holder (with its run id once known) into the lock file."""
        if run_id is not None:
            self.holder = Holder(**{**asdict(self.holder), "run_id": run_id})
        data = json.dumps(asdict(self.holder)).encode()
        with contextlib.suppress(OSError):  # a read-only lock file still locks
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data + b"\n", 0)

    def release(self) -> None:
        if self._fd < 0:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)  # no stale holder for the next reader
        os.close(self._fd)  # closing the only descriptor drops the flock
        self._fd = -1


def read_holder(path: Path) -> Holder | None:
    try:
        return Holder.from_text(path.read_text())
    except OSError:
        return None


def _open(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # another user's file: locking needs only a read descriptor
        return os.open(path, os.O_RDONLY)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o666)  # every user's runs share the one machine
    return fd


def acquire(
    preset: str,
    wait: bool,
    note: Callable[[str], None],
    path: Path | None = None,
) -> MachineLock:
    """Take the machine's lock; wait for it (saying whom for) or raise MachineBusy."""
    path = lock_path() if path is None else path
    fd = _open(path)
    reminded_at: float | None = None
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = read_holder(path)
                if not wait:
                    raise MachineBusy(path, holder) from None
                now = time.monotonic()
                if reminded_at is None or now - reminded_at >= REMIND_EVERY_S:
                    who = holder.describe() if holder else "another bench run"
                    note(f"waiting for the machine: {who} is measuring (lock {path})")
                    reminded_at = now
                time.sleep(POLL_S)
    except BaseException:
        os.close(fd)
        raise
    if reminded_at is not None:
        note("the machine is free: measuring now")
    return MachineLock(path, fd, Holder(os.getpid(), time.time(), preset))
