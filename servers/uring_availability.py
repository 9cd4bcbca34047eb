"""Can io_uring run here, and if not, why and what to change (uring-poll backends, bench doctor).

Three things can stop it, each with its own remedy:
- the kernel switch ``kernel.io_uring_disabled`` (Linux 6.6+): 2 disables io_uring for
  everyone, 1 for processes outside ``kernel.io_uring_group``;
- ``io_uring_setup`` itself failing: ENOSYS when the kernel lacks it or a seccomp filter
  answers ENOSYS (container runtimes' default profiles), EPERM when a filter or an LSM
  denies it; it is asked directly, with the raw system call, so the answer does not
  depend on the C extension being built;
- the C extension (servers._cloop) built without liburing, or a kernel whose io_uring
  lacks multishot poll (Linux 5.13+): the extension's own probe arms one on a pipe.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DISABLED_SYSCTL = Path("/proc/sys/kernel/io_uring_disabled")
# io_uring_setup's number in the unified syscall table (every architecture since Linux 5.1).
IO_URING_SETUP = 425
# sizeof(struct io_uring_params): the kernel reads and writes all of it.
PARAMS_BYTES = 120
LIBURING_HINT = "apt-get install liburing-dev, then pip install -e . again"
SECCOMP_HINT = (
    "allow io_uring_setup, io_uring_enter and io_uring_register in the seccomp profile "
    "(docker/podman: --security-opt seccomp=<a profile that allows them>)"
)


@dataclass(frozen=True)
class UringStatus:
    """What this machine says about io_uring."""

    kernel: str
    disabled: int | None
    """kernel.io_uring_disabled (None: the kernel has no such switch, before 6.6)."""
    setup_errno: int | None
    """errno of a raw io_uring_setup(1, params); None when it succeeded."""
    liburing: str | None
    """The liburing servers._cloop loaded (e.g. liburing.so.2.3); None when not built with it."""
    reason: str | None
    """None when the io_uring backends can run, else the cause and its remedy."""


def read_disabled() -> int | None:
    try:
        return int(DISABLED_SYSCTL.read_text().strip())
    except (OSError, ValueError):
        return None


def setup_errno() -> int | None:
    """errno of io_uring_setup(1, zeroed params), or None when it returns a ring (then closed)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    params = ctypes.create_string_buffer(PARAMS_BYTES)
    fd = libc.syscall(ctypes.c_long(IO_URING_SETUP), ctypes.c_uint(1), params)
    if fd < 0:
        return ctypes.get_errno()
    os.close(fd)
    return None


def _setup_reason(err: int, disabled: int | None) -> str:
    name = errno.errorcode.get(err, str(err))
    said = f"io_uring_setup fails with {name} ({os.strerror(err)})"
    if err == errno.ENOSYS:
        return (
            f"{said}: the kernel lacks io_uring (CONFIG_IO_URING) or a seccomp filter hides "
            f"it, as container runtimes' default profiles do: run on Linux 5.13+ built with "
            f"io_uring, or {SECCOMP_HINT}"
        )
    if err == errno.EPERM and disabled == 1:
        return (
            f"{said}: kernel.io_uring_disabled is 1 and this user is not in "
            "kernel.io_uring_group: add it to that group, or `sysctl -w "
            "kernel.io_uring_disabled=0` as root"
        )
    if err == errno.EPERM:
        return f"{said}: a seccomp filter or a security module denies it: {SECCOMP_HINT}"
    if err == errno.ENOMEM:
        return (
            f"{said}: on kernels before 5.12 rings count against RLIMIT_MEMLOCK: "
            "`ulimit -l unlimited`, or a newer kernel"
        )
    return f"{said}: the io_uring backends cannot run on this kernel"


def _build_reason() -> tuple[str | None, str | None]:
    """(liburing loaded, None) when the extension's io_uring works, else (liburing, why)."""
    try:
        from servers.c_server import load_extension

        cloop = load_extension()
    except ImportError as exc:
        return None, f"{exc}"
    liburing = getattr(cloop, "LIBURING", None)
    if liburing is None:
        return None, (
            "servers._cloop was built without io_uring (liburing.h or -luring was not found, "
            f"or SELECTBENCH_URING=0): {LIBURING_HINT}"
        )
    failure = cloop.uring_probe()
    if failure is not None:
        _err, why = failure
        return liburing, f"io_uring readiness does not work here ({why}): Linux 5.13+ needed"
    return liburing, None


@cache
def status() -> UringStatus:
    """The checks in the order a remedy must follow them (kernel switch, system call, build)."""
    disabled = read_disabled()
    err = setup_errno()
    reason = None
    if disabled == 2:
        reason = (
            "kernel.io_uring_disabled is 2: io_uring is switched off for every process: "
            "`sysctl -w kernel.io_uring_disabled=0` as root"
        )
    elif err is not None:
        reason = _setup_reason(err, disabled)
    liburing, build = _build_reason()
    return UringStatus(platform.release(), disabled, err, liburing, reason or build)


def unavailable_reason() -> str | None:
    """None when the io_uring backends can run here, else the cause and its remedy."""
    return status().reason
