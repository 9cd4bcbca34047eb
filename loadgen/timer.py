"""A timerfd (Linux) armed at absolute CLOCK_MONOTONIC nanoseconds, via ctypes.

epoll_wait's timeout has millisecond granularity (Python rounds it up), so an
open-loop worker that slept in epoll until the next intended send time would
send up to ~1 ms late, and that lateness would land in the corrected latency.
A timerfd registered in the same epoll wakes the loop within the (lowered)
kernel timer slack without busy-waiting, so the loop stays idle between
sends and its CPU use still says whether it is saturated.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os

CLOCK_MONOTONIC = 1
TFD_NONBLOCK = 0o4000
TFD_CLOEXEC = 0o2000000
TFD_TIMER_ABSTIME = 1
PR_SET_TIMERSLACK = 29


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class MonotonicTimerFd:
    """One-shot timer: ``arm(deadline_ns)``; the fd becomes readable at the deadline."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._settime = libc.timerfd_settime
        self._settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.c_void_p,
        ]
        create = libc.timerfd_create
        create.argtypes = [ctypes.c_int, ctypes.c_int]
        fd = create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_create: {os.strerror(err)}")
        self.fd: int = fd
        # Default timer slack is 50 us; a wake-up that late would be charged to
        # the corrected latency. 1 ns slack: wake as close to the deadline as the
        # kernel can.
        prctl = libc.prctl
        prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
        prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
        self._spec = _Itimerspec()
        self._spec_ref = ctypes.byref(self._spec)
        self.armed_ns = 0

    def arm(self, deadline_ns: int) -> None:
        if deadline_ns <= 0:
            deadline_ns = 1  # 0 would disarm
        value = self._spec.it_value
        value.tv_sec, value.tv_nsec = divmod(deadline_ns, 1_000_000_000)
        if self._settime(self.fd, TFD_TIMER_ABSTIME, self._spec_ref, None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_settime: {os.strerror(err)}")
        self.armed_ns = deadline_ns

    def drain(self) -> None:
        """Consume the expiration count so level-triggered epoll stops reporting it."""
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 8)
        self.armed_ns = 0

    def close(self) -> None:
        os.close(self.fd)
