"""Every process the harness starts dies with the process that started it, whatever ends it.

A child started by bench, a load agent or a server must not outlive its
parent: an orphan server pinned to the server CPU, holding its port, would be
measured beside by the next run. SIGTERM and Ctrl-C are handled by the
parents, but SIGKILL (the OOM killer, a closed session) runs no code in them,
so the child itself asks the kernel for a signal when its parent dies
(PR_SET_PDEATHSIG). It is race-free only with a check: if the parent died
between the fork and the prctl, the child is already an orphan and no signal
will come, so after setting it the child compares getppid() with the PID its
parent passed in and exits when they differ.

Two ways in:

- a Python child of this project calls ``die_with_parent()`` first thing in its
  entry point, and its parent starts it with ``env=child_env(...)`` (which
  carries the parent's PID);
- any other program (haproxy, a pytest subprocess) is started with
  ``preexec_fn=preexec_die_with_parent()``, which does the same between fork
  and exec. preexec_fn is unsafe in a process with threads (the child of a
  fork may inherit a lock another thread held), so the first way is preferred
  wherever the child is ours.

The kernel sends the signal when the *thread* that started the child ends,
not the process: start children from a thread that lives as long as the
process (the main thread; a Dask actor's thread, which lives as long as its
worker). This package imports nothing from the project, so servers, loadgen
and bench may all use it.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable, Mapping

# The variable that carries the parent's PID to a Python child.
PARENT_PID_ENV = "SELECTBENCH_PARENT_PID"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# A child that found its parent gone before it could arm the signal exits with this status.
EXIT_ORPHANED = 126

_libc = ctypes.CDLL(None, use_errno=True)


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: os.environ) plus this process's PID, for a child that calls
    ``die_with_parent()``."""
    out = dict(os.environ if env is None else env)
    out[PARENT_PID_ENV] = str(os.getpid())
    return out


def _arm(parent: int) -> None:
    if _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        os._exit(EXIT_ORPHANED)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(EXIT_ORPHANED)


def die_with_parent() -> None:
    """In a child started with ``child_env``: SIGKILL when the parent dies; exit now if it has.

    The variable is removed, so a grandchild started without ``child_env`` does not
    compare its parent with its grandparent. Without the variable (a person started
    this process by hand) nothing is armed.
    """
    expected = os.environ.pop(PARENT_PID_ENV, None)
    if expected is None or not expected.isdigit():
        return
    _arm(int(expected))


def preexec_die_with_parent() -> Callable[[], None]:
    """A preexec_fn: the child gets SIGKILL when this process ends, and signals unblocked
    (a blocked mask is inherited across exec, and servers.cli holds SIGTERM/SIGINT
    blocked until it serves)."""
    parent = os.getpid()

    def preexec() -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        _arm(parent)

    return preexec


__all__ = [
    "EXIT_ORPHANED",
    "PARENT_PID_ENV",
    "child_env",
    "die_with_parent",
    "preexec_die_with_parent",
]
