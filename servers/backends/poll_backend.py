"""poll(2): no FD_SETSIZE limit, but the kernel still walks the whole array per call."""

from __future__ import annotations

import select
import socket

from servers.config import ServerConfig
from servers.eventloop import EventLoopServer
from servers.stats import ServerStats


class PollBackend:
    name = "poll"
    edge_triggered = False
    fd_limit: int | None = None

    def __init__(self) -> None:
        self._poll = select.poll()

    def register(self, fd: int, mask: int) -> None:
        self._poll.register(fd, mask)

    def modify(self, fd: int, mask: int) -> None:
        self._poll.modify(fd, mask)

    def unregister(self, fd: int) -> None:
        self._poll.unregister(fd)

    def wait(self, timeout: float | None) -> list[tuple[int, int]]:
        # poll() takes milliseconds; None blocks.
        return self._poll.poll(None if timeout is None else timeout * 1000.0)

    def close(self) -> None:
        self._poll = select.poll()


def make_server(
    config: ServerConfig, listener: socket.socket, stats: ServerStats
) -> EventLoopServer:
    return EventLoopServer(config, PollBackend(), listener, stats)
