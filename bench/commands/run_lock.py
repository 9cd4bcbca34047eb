"""``bench run``'s side of the machine lock: take it before measuring, name the run, free it.

One lock per process, held from just before the quiet check (a run that waited
checks quiet once the other has finished) until the run and its report are done;
``--dry-run`` measures nothing and never takes it. The lock is process-wide, so
it lives here rather than in an argument threaded through every step.
"""

from __future__ import annotations

import sys

from bench.commands.common import err
from bench.measure.machine.lock import LOCK_PATH_ENV, MachineBusy, MachineLock, acquire

# EX_TEMPFAIL (sysexits.h): nothing wrong with the request, try again later.
EXIT_BUSY = 75

_held: list[MachineLock] = []


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def take_machine_lock(preset: str, no_wait: bool) -> bool:
    """Hold the lock (waiting for it unless ``no_wait``); False, with one line said, if busy."""
    try:
        _held.append(acquire(preset, wait=not no_wait, note=_note))
    except MachineBusy as exc:
        err(f"{exc}; wait for it to finish, or run without --no-wait to queue behind it")
        return False
    except OSError as exc:
        err(
            f"cannot open the machine's benchmark lock ({exc}): set {LOCK_PATH_ENV} to a "
            "file this user may create"
        )
        return False
    return True


def name_locked_run(run_id: str) -> None:
    """Write the run id into the lock, so a run waiting for this one can name it."""
    for lock in _held:
        lock.record(run_id)


def release_machine_lock() -> None:
    while _held:
        _held.pop().release()
