"""Opening connections: the non-blocking connect shared by every worker, and the
up-front phase that opens a worker's idle and active connections.

Idle first, then active: on the server the active connections then get the
highest descriptor numbers, the realistic worst case for select.
"""

from __future__ import annotations

import array
import errno
import os
import select
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from loadgen.accounting import connect_error_kind, new_connect_errors
from loadgen.config import LoadConfig
from loadgen.plan import WorkerPlan

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
MAX_PENDING_CONNECTS = 512
REFUSED_ABORT_AFTER = 64  # consecutive refusals with no success: nothing listens, stop trying
SOCK_TYPE = socket.SOCK_STREAM | socket.SOCK_NONBLOCK


def address_family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def start_connect(
    family: socket.AddressFamily,
    target: tuple[str, int],
    source: str | None,
    nodelay: bool,
) -> tuple[socket.socket | None, int]:
    """Start a non-blocking connect, bound to ``source`` if given.

    Returns (socket, 0 or EINPROGRESS), or (None, errno) when it failed at once.
    IP_BIND_ADDRESS_NO_PORT lets the kernel pick the port at connect time per
    4-tuple, so every source address has its own port space (see loadgen.plan).
    """
    try:
        sock = socket.socket(family, SOCK_TYPE)
    except OSError as exc:
        return None, exc.errno or 0
    try:
        if nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source is not None:
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source, 0))
        err = sock.connect_ex(target)
    except OSError as exc:
        err = exc.errno or -1
    if err not in (0, errno.EINPROGRESS):
        sock.close()
        return None, err
    return sock, err


@dataclass
class Opened:
    """What the up-front phase opened (bare descriptors) and what failed."""

    idle_fds: array.array = field(default_factory=lambda: array.array("i"))
    active_fds: list[int] = field(default_factory=list)
    connect_errors: dict[str, int] = field(default_factory=new_connect_errors)
    duration_s: float = 0.0


def open_connections(
    cfg: LoadConfig,
    plan: WorkerPlan,
    ep: select.epoll,
    active: int,
    should_stop: Callable[[], bool],
) -> Opened:
    """Open plan.idle idle then ``active`` active connections, at cfg.connect_rate.

    At most MAX_PENDING_CONNECTS connects are in flight; each may take
    cfg.connect_timeout_s. ``should_stop`` is asked every 100 ms (it reads the
    parent's messages); a stop abandons the connects still pending. Gives up
    after REFUSED_ABORT_AFTER refusals in a row with nothing established, or
    when the process runs out of descriptors.
    """
    out = Opened()
    family = address_family(plan.address)
    target = (plan.address, cfg.port)
    total = plan.idle + active
    sources = plan.sources
    rate_ns = None
    if cfg.connect_rate is not None:
        rate_ns = cfg.connect_rate / cfg.worker_count() / 1e9
    timeout_ns = int(cfg.connect_timeout_s * 1e9)
    pending: dict[int, tuple[int, bool]] = {}
    mono = time.monotonic_ns
    start = mono()
    started = 0
    refused_streak = 0
    established = 0
    give_up = False
    stop = False
    next_timeout_scan = start + 100_000_000
    errors = out.connect_errors
    while (started < total and not give_up) or pending:
        now = mono()
        allowed = total if rate_ns is None else min(total, int((now - start) * rate_ns) + 1)
        while started < allowed and len(pending) < MAX_PENDING_CONNECTS and not give_up:
            if stop:
                break
            is_active = started >= plan.idle
            index = plan.first_connection_index + started
            started += 1
            source = sources[index % len(sources)] if sources else None
            sock, err = start_connect(family, target, source, nodelay=is_active)
            if sock is None:
                errors[connect_error_kind(err)] += 1
                if err in (errno.EMFILE, errno.ENFILE):
                    give_up = True
                elif err == errno.ECONNREFUSED:
                    refused_streak += 1
                    give_up = established == 0 and refused_streak >= REFUSED_ABORT_AFTER
                continue
            fd = sock.detach()
            ep.register(fd, select.EPOLLOUT)
            pending[fd] = (now, is_active)
        if not pending:
            if started < total and not give_up and not stop:
                wait_ns = int(started / rate_ns) + start - mono() if rate_ns else 0
                time.sleep(max(0, wait_ns) / 1e9)
                continue
            break
        for fd, ev in ep.poll(0.05):
            _, is_active = pending.pop(fd)
            if ev & (select.EPOLLERR | select.EPOLLHUP):
                sock = socket.socket(fileno=fd)
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or errno.ECONNRESET
                ep.unregister(fd)
                sock.close()
                errors[connect_error_kind(err)] += 1
                if err == errno.ECONNREFUSED:
                    refused_streak += 1
                    give_up = established == 0 and refused_streak >= REFUSED_ABORT_AFTER
                continue
            established += 1
            refused_streak = 0
            if is_active:
                ep.modify(fd, select.EPOLLIN)
                out.active_fds.append(fd)
            else:
                ep.unregister(fd)
                out.idle_fds.append(fd)
        now = mono()
        if now >= next_timeout_scan:
            next_timeout_scan = now + 100_000_000
            stop = should_stop()
            if stop:
                give_up = True
            for fd, (t0, _) in list(pending.items()):
                if now - t0 > timeout_ns or stop:
                    del pending[fd]
                    ep.unregister(fd)
                    socket.close(fd)
                    if not stop:
                        errors["ETIMEDOUT"] += 1
    out.duration_s = (mono() - start) / 1e9
    return out


def count_alive(fds: Iterable[int]) -> int:
    """Idle connections neither closed nor reset by the server (EAGAIN on read)."""
    alive = 0
    for fd in fds:
        try:
            if os.read(fd, 1):
                alive += 1  # unsolicited data, but the connection is open
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    return alive
