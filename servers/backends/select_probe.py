"""Claim 1 asked of select itself: from which descriptor number does select.select refuse?

At start-up the select server places a socket at descriptor numbers
FD_SETSIZE - 1 and FD_SETSIZE (dup2), calls `select.select` on each with
timeout 0, and keeps CPython's own words when it refuses, e.g.

    ValueError: filedescriptor out of range in select()

The server's guard (connections on descriptors numbered >= it are closed right
after accept) is the smallest number select refused, not a typed-in constant.
Should the boundary not lie between the two (another libc or CPython), a
binary search over free descriptor numbers finds it. When the process may not
open a descriptor numbered FD_SETSIZE (RLIMIT_NOFILE too low), the probe cannot
run: the status says so and the guard falls back on FD_SETSIZE.
"""

from __future__ import annotations

import os
import resource
import select
import socket
from dataclasses import dataclass

from servers.limits import FD_SETSIZE


@dataclass(frozen=True)
class SelectProbe:
    limit: int | None
    """Smallest descriptor number select refused (the guard); None: it refused none."""
    error: str | None
    """The exception select raised for that number, as "Type: message"."""
    status: str
    """One sentence: what was probed and found, or why the probe could not run."""


class _CannotProbe(Exception):
    pass


def _select_on(fd: int) -> str | None:
    """None when select.select accepts `fd`, else its exception as "Type: message"."""
    try:
        select.select([fd], [], [], 0)
    except (ValueError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _probe_at(source_fd: int, number: int) -> str | None:
    """dup2 `source_fd` to descriptor `number`, ask select about it, close it again."""
    try:
        os.fstat(number)
    except OSError:
        pass  # free, as it should be: dup2 would otherwise close what holds it
    else:
        raise _CannotProbe(f"descriptor {number} is already open in this process")
    try:
        os.dup2(source_fd, number, inheritable=False)
    except OSError as exc:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        raise _CannotProbe(
            f"cannot place a descriptor at number {number} ({exc.strerror}): RLIMIT_NOFILE "
            f"is {soft}; raise it above {FD_SETSIZE} (ulimit -n {2 * FD_SETSIZE})"
        ) from exc
    try:
        return _select_on(number)
    finally:
        os.close(number)


def probe_select() -> SelectProbe:
    """Find the smallest descriptor number select.select refuses, asking select itself."""
    left, right = socket.socketpair()
    with left, right:
        source = left.fileno()
        try:
            below = _probe_at(source, FD_SETSIZE - 1)
            at = _probe_at(source, FD_SETSIZE)
            if below is None and at is not None:
                return SelectProbe(
                    FD_SETSIZE,
                    at,
                    f"select.select accepted descriptor {FD_SETSIZE - 1} and refused {FD_SETSIZE}",
                )
            return _search(source, below, at)
        except _CannotProbe as exc:
            return SelectProbe(
                FD_SETSIZE,
                None,
                f"probe not run: {exc}; the guard falls back on FD_SETSIZE {FD_SETSIZE}",
            )


def _search(source: int, below: str | None, at: str | None) -> SelectProbe:
    """The boundary is not between FD_SETSIZE - 1 and FD_SETSIZE: bisect for it."""
    if below is not None:  # refused already below FD_SETSIZE
        if _select_on(source) is not None:
            raise _CannotProbe(f"select.select refuses even descriptor {source}")
        accepted, refused, error = source, FD_SETSIZE - 1, below
    else:  # accepted FD_SETSIZE: look up to the highest number this process may open
        top = resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 1
        error = _probe_at(source, top) if top > FD_SETSIZE else None
        if error is None:
            return SelectProbe(
                None,
                None,
                f"select.select accepted descriptors {FD_SETSIZE} and {max(top, FD_SETSIZE)} "
                "(the highest RLIMIT_NOFILE allows): no guard",
            )
        accepted, refused = FD_SETSIZE, top
    while refused - accepted > 1:
        middle = (accepted + refused) // 2
        answer = _probe_at(source, middle)
        if answer is None:
            accepted = middle
        else:
            refused, error = middle, answer
    return SelectProbe(
        refused,
        error,
        f"select.select accepted descriptor {accepted} and refused {refused} (bisected)",
    )
