"""A short scheduler slice for an open-loop worker, so that its wake-up preempts at once.

An open-loop worker sleeps until just before each intended send. When it wakes,
another task of normal priority may be running on its CPU: on this project's
machines, bench itself, which reads the server at the measured window's start
from the load generator's CPU. Linux's EEVDF scheduler (6.6+) lets the running
task finish its slice (1.4 ms on a 2-CPU machine, ``se.slice`` in
/proc/PID/sched) before a waking task of the same slice gets the CPU, and
with HZ=250 the next tick may be 4 ms away, so the sends due meanwhile go out
late by as much. Since Linux 6.12 a task may ask for a shorter slice
(``sched_attr.sched_runtime`` for SCHED_OTHER, at least 0.1 ms; no privilege
needed), and a waking task with a shorter slice than the running one preempts
it (PREEMPT_SHORT). The worker's share of the CPU is unchanged: the slice
sets how soon it runs, not how much.

Measured on this project's 2-CPU VM (Linux 6.18, HZ=250; 2026-12-06): open loop
at 1,000 req/s over 8 connections plus 4,000 idle against c-epoll, 0.45 s windows,
bench's start-edge read of the server at the window's start, 4 windows each. With
the read listing /proc/PID/fd (7 ms on the load CPU) the latest send was 2.4-3.9 ms
late, the sends during the read late by a ramp of whole milliseconds; with this
slice 0.3-1.1 ms; with the read's count made cheap too (bench.measure.placement.
open_fd_count) 0.23-0.32 ms and the send-lag p99 0-1 us.

On a kernel that does not know custom slices the call is accepted and ignored,
or refused; either way the worker runs as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# The shortest slice the kernel accepts for SCHED_OTHER (it clamps to 0.1-100 ms).
SHORT_SLICE_NS = 100_000
SCHED_OTHER = 0
# sched_setattr's system call number where it is known (it has no libc wrapper).
SYS_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274}
SCHED_ATTR_SIZE_VER0 = 48


class _SchedAttr(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
    ]


def request_short_slice(slice_ns: int = SHORT_SLICE_NS) -> bool:
    """Ask for a ``slice_ns`` slice for this thread, keeping SCHED_OTHER and its nice value.

    Returns whether the kernel took the call (a kernel before 6.12 takes it and ignores
    the slice). Does nothing and returns False off Linux, under another policy, or where
    the system call number is not known.
    """
    number = SYS_SCHED_SETATTR.get(platform.machine())
    if number is None or os.sched_getscheduler(0) != SCHED_OTHER:
        return False
    attr = _SchedAttr(
        size=SCHED_ATTR_SIZE_VER0,
        sched_policy=SCHED_OTHER,
        sched_nice=os.getpriority(os.PRIO_PROCESS, 0),
        sched_runtime=slice_ns,
    )
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.syscall.restype = ctypes.c_long
    rc = libc.syscall(ctypes.c_long(number), 0, ctypes.byref(attr), 0)
    return rc == 0


def current_slice_ns() -> int | None:
    """This process's slice as the scheduler reports it (``se.slice``), or None."""
    try:
        with open("/proc/self/sched") as fh:
            for line in fh:
                if line.startswith("se.slice"):
                    return int(line.split(":")[1])
    except (OSError, ValueError):
        pass
    return None


__all__ = ["SHORT_SLICE_NS", "current_slice_ns", "request_short_slice"]
