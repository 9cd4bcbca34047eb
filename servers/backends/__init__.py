"""Readiness backends: one short adapter per system call, in the manner of wrk's ae_*.c.

Every adapter offers the same five operations on integer descriptors --
register, modify, unregister, wait, close -- and reports readiness as
`(fd, mask)` pairs using poll's bit values (POLLIN=1, POLLOUT=4, POLLERR=8,
POLLHUP=16), which epoll shares, so poll and epoll results pass through
untranslated. The connection logic in `servers.eventloop` is written once
against this interface.

Each backend module also offers `make_server(config, listener, stats)`, the
factory its `servers.registry` declaration names.
"""

from __future__ import annotations

import select
from typing import Protocol

READ = select.POLLIN
WRITE = select.POLLOUT
ERROR = select.POLLERR | select.POLLHUP


class Backend(Protocol):
    """The interface every readiness mechanism implements."""

    name: str
    # True when readiness is reported once per change (epoll EPOLLET): the
    # loop must then drain reads and writes until EAGAIN.
    edge_triggered: bool
    # Highest descriptor number + 1 the mechanism accepts (select: FD_SETSIZE), or None.
    fd_limit: int | None

    def register(self, fd: int, mask: int) -> None: ...
    def modify(self, fd: int, mask: int) -> None: ...
    def unregister(self, fd: int) -> None: ...
    def wait(self, timeout: float | None) -> list[tuple[int, int]]: ...
    def close(self) -> None: ...
