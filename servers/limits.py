"""Process set-up and limits shared by every server: FD_SETSIZE, descriptor limit, CPU
pinning, bind policy, stop signals."""

from __future__ import annotations

import errno
import ipaddress
import os
import resource
import signal
import socket

# glibc's FD_SETSIZE: the size in bits of select(2)'s descriptor sets. CPython's
# select.select refuses any descriptor NUMBERED this or more, however few are passed;
# reproduce with
#   python -c "import os,select; os.dup2(0, 1024); select.select([1024], [], [], 0)"
# -> ValueError: filedescriptor out of range in select()
FD_SETSIZE = 1024


class SetupError(Exception):
    """A server cannot start; the message names the cause and the remedy."""


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# accept() errors meaning "no descriptor left" (process or system-wide).
OUT_OF_FDS_ERRNOS = (errno.EMFILE, errno.ENFILE)
# Bytes asked of one recv(): larger than a loopback segment burst, small enough to stay cheap.
RECV_BYTES = 65536


def hold_stop_signals() -> None:
    """Block SIGTERM/SIGINT until the server's handlers are in place.

    The READY line goes out before run() installs them; a SIGTERM in between
    would otherwise kill the process with status -15 instead of exit 0.
    Threads started while they are held inherit the block (and so never take them).
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def release_stop_signals() -> None:
    """Called by every server's run() once its SIGTERM/SIGINT handling is installed:
    a signal that arrived meanwhile is delivered now."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def raise_fd_limit(cap: int | None = None) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (or to `cap`); return the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if cap is not None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(cap, hard), hard))
        return min(cap, hard)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def pin_to_cpu(cpu: int) -> None:
    # The kernel decides, not the inherited mask: bench runs pinned to the load
    # generator's CPUs while it measures, and its servers pin themselves elsewhere.
    try:
        os.sched_setaffinity(0, {cpu})
    except (OSError, ValueError, OverflowError) as exc:
        allowed = os.sched_getaffinity(0)
        raise SetupError(
            f"--cpu {cpu} is not a CPU this process may use (the kernel refused it: {exc}; "
            f"this process runs on {sorted(allowed)}): pick an online CPU of its cpuset or "
            "drop --cpu"
        ) from exc


def is_loopback(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise SetupError(f"cannot resolve host {host!r} ({exc}): use an IP address") from exc
    return all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def check_bind_address(host: str, allow_remote: bool) -> None:
    if not allow_remote and not is_loopback(host):
        raise SetupError(
            f"refusing to bind {host!r}: it is not a loopback address, and these servers "
            "are benchmark targets, not hardened services. Use 127.0.0.1 (the default) or "
            "pass --allow-remote if you really mean to listen beyond this machine"
        )


def open_listener(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SetupError(
            f"cannot bind {host}:{port}: {exc.strerror}; choose another --port (0 picks a free one)"
        ) from exc
    sock.listen(backlog)
    return sock
