"""epoll(7), level- or edge-triggered: the kernel keeps the interest list and
returns only ready descriptors, so a wait costs O(ready), not O(registered).

Edge-triggered mode registers read and write interest once with EPOLLET and
never calls epoll_ctl again for that descriptor; in exchange the loop must
read and write until EAGAIN, because a readiness change is reported once.
"""

from __future__ import annotations

import select
import socket

from servers.backends import READ, WRITE
from servers.config import ServerConfig
from servers.eventloop import EventLoopServer
from servers.stats import ServerStats

# One epoll_wait returns at most this many events; more stay queued for the next call.
MAX_EVENTS = 1024


class EpollBackend:
    fd_limit: int | None = None

    def __init__(self, edge_triggered: bool) -> None:
        self.edge_triggered = edge_triggered
        self.name = "epoll-et" if edge_triggered else "epoll"
        self._epoll = select.epoll()

    def register(self, fd: int, mask: int) -> None:
        if self.edge_triggered:
            mask = READ | WRITE | select.EPOLLET
        self._epoll.register(fd, mask)

    def modify(self, fd: int, mask: int) -> None:
        if self.edge_triggered:
            return  # interest is fixed at registration
        self._epoll.modify(fd, mask)

    def unregister(self, fd: int) -> None:
        self._epoll.unregister(fd)

    def wait(self, timeout: float | None) -> list[tuple[int, int]]:
        return self._epoll.poll(-1 if timeout is None else timeout, MAX_EVENTS)

    def close(self) -> None:
        self._epoll.close()


def make_server(
    config: ServerConfig, listener: socket.socket, stats: ServerStats
) -> EventLoopServer:
    return EventLoopServer(config, EpollBackend(edge_triggered=False), listener, stats)


def make_server_edge_triggered(
    config: ServerConfig, listener: socket.socket, stats: ServerStats
) -> EventLoopServer:
    return EventLoopServer(config, EpollBackend(edge_triggered=True), listener, stats)
