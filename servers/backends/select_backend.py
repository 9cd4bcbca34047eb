"""select(2): the kernel scans every descriptor in the sets on every call.

The sets are bitmaps of FD_SETSIZE (1024) bits, so CPython's select.select
raises ValueError for any descriptor numbered >= 1024, however few are
passed. The loop asks `fd_limit` and refuses such connections after accept;
`make_server` sets it from select's own answer at start-up (select_probe).
Plain int descriptors are passed: socket objects cost a fileno() call each per
wait, 1.8x the whole call with 500 sockets here (31 vs 54 us), measured with
S="import socket,select; s=[socket.socketpair()[0] for _ in range(500)]; f=[x.fileno() for x in s]"
python -m timeit -s "$S" "select.select(f, [], [], 0)"    # then the same with s
"""

from __future__ import annotations

import select
import socket

from servers.backends import READ, WRITE
from servers.backends.select_probe import probe_select
from servers.config import ServerConfig
from servers.eventloop import EventLoopServer
from servers.limits import FD_SETSIZE
from servers.stats import ServerStats


class SelectBackend:
    name = "select"
    edge_triggered = False

    def __init__(self, fd_limit: int | None = FD_SETSIZE) -> None:
        self.fd_limit = fd_limit
        self._readers: set[int] = set()
        self._writers: set[int] = set()

    def register(self, fd: int, mask: int) -> None:
        self.modify(fd, mask)

    def modify(self, fd: int, mask: int) -> None:
        if mask & READ:
            self._readers.add(fd)
        else:
            self._readers.discard(fd)
        if mask & WRITE:
            self._writers.add(fd)
        else:
            self._writers.discard(fd)

    def unregister(self, fd: int) -> None:
        self._readers.discard(fd)
        self._writers.discard(fd)

    def wait(self, timeout: float | None) -> list[tuple[int, int]]:
        readable, writable, _ = select.select(self._readers, self._writers, (), timeout)
        events = [(fd, READ) for fd in readable]
        if writable:
            events += [(fd, WRITE) for fd in writable]
        return events

    def close(self) -> None:
        self._readers.clear()
        self._writers.clear()


def make_server(
    config: ServerConfig, listener: socket.socket, stats: ServerStats
) -> EventLoopServer:
    probe = probe_select()
    stats.fd_number_limit = probe.limit
    stats.select_probe_error = probe.error
    stats.select_probe_status = probe.status
    return EventLoopServer(config, SelectBackend(fd_limit=probe.limit), listener, stats)
