"""New connections for keep-alive slots whose server closed the old one cleanly.

Real servers close keep-alive connections by policy (nginx after 1,000
requests by default). A KeepAliveWorker then opens a new connection for the
slot at once (as wrk does) and goes on; this module holds the connects in
flight. A pending connect is registered for EPOLLOUT in the worker's epoll;
its first event reaches the worker's read, which fails (EAGAIN once
connected, the connect's error otherwise) and hands the descriptor to
``finish``: the hot path is unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
from dataclasses import dataclass

from loadgen.config import LoadConfig
from loadgen.connect import address_family, start_connect
from loadgen.plan import WorkerPlan


@dataclass
class PendingSlot:
    """A slot waiting for its new connection."""

    sock: socket.socket
    start_ns: int  # when the old connection ended
    carried_ns: int  # send time of a request the server closed on unanswered (0: none)
    intended_ns: int  # open loop: the slot's next intended send time


class Reconnector:
    """The connects in flight, by descriptor; bounded by cfg.connect_timeout_s each."""

    def __init__(self, cfg: LoadConfig, plan: WorkerPlan, ep: select.epoll) -> None:
        self.ep = ep
        self.family = address_family(plan.address)
        self.target = (plan.address, cfg.port)
        self.sources = plan.sources
        self.source_i = plan.first_active_index
        self.timeout_ns = int(cfg.connect_timeout_s * 1e9)
        self.pending: dict[int, PendingSlot] = {}

    def start(self, now: int, carried_ns: int, intended_ns: int) -> int:
        """Start a connect for a slot; 0, or the errno of a connect that failed at once."""
        source = None
        if self.sources:
            source = self.sources[self.source_i % len(self.sources)]
            self.source_i += 1
        sock, err = start_connect(self.family, self.target, source, nodelay=True)
        if sock is None:
            return err
        self.pending[sock.fileno()] = PendingSlot(sock, now, carried_ns, intended_ns)
        self.ep.register(sock.fileno(), select.EPOLLOUT)
        return 0

    def finish(self, fd: int, exc: OSError | None) -> tuple[PendingSlot, int]:
        """The connect on fd reported: (slot, 0) with fd now a bare EPOLLIN descriptor
        owned by the caller, or (slot, errno) with the socket closed."""
        slot = self.pending.pop(fd)
        if exc is not None and not isinstance(exc, BlockingIOError | InterruptedError):
            err = exc.errno or errno.ECONNRESET
        else:
            err = slot.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.ep.unregister(fd)
            slot.sock.close()
            return slot, err
        self.ep.modify(fd, select.EPOLLIN)
        slot.sock.detach()
        return slot, 0

    def expired(self, now: int) -> list[PendingSlot]:
        """Close and return the connects older than the connect timeout."""
        late = [fd for fd, slot in self.pending.items() if now - slot.start_ns > self.timeout_ns]
        out = []
        for fd in late:
            slot = self.pending.pop(fd)
            self.ep.unregister(fd)
            slot.sock.close()
            out.append(slot)
        return out

    def carried(self) -> int:
        """Requests sent and unanswered whose slot is reconnecting."""
        return sum(1 for slot in self.pending.values() if slot.carried_ns)

    def close_all(self) -> None:
        for fd in list(self.pending):
            slot = self.pending.pop(fd)
            with contextlib.suppress(OSError):
                self.ep.unregister(fd)
            slot.sock.close()
