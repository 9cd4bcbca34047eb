"""io_uring readiness: one multishot IORING_OP_POLL_ADD per descriptor, one io_uring_enter
per wait that submits the queued interest changes and reaps the completions.

The calls come from the project's own extension (servers._cloop.UringPoll, built from
servers/c/mech_uring_poll.c, the C twin's adapter), as CPython's select module wraps
epoll. A multishot poll posts a completion per wake-up, never again for bytes already
waiting (the kernel refuses a level-triggered multishot poll), so this adapter is
edge-triggered like epoll-et: read and write interest armed once at registration, the
loop draining until EAGAIN. Each completion is one event.
"""

from __future__ import annotations

import socket

from servers.backends import READ, WRITE
from servers.c_server import load_extension
from servers.config import ServerConfig
from servers.eventloop import EventLoopServer
from servers.stats import ServerStats


class UringPollBackend:
    name = "uring-poll"
    edge_triggered = True
    fd_limit: int | None = None

    def __init__(self) -> None:
        self._ring = load_extension().UringPoll()

    def register(self, fd: int, mask: int) -> None:
        self._ring.register(fd, READ | WRITE)

    def modify(self, fd: int, mask: int) -> None:
        # Only the listener's interest changes (accept paused when out of descriptors);
        # resuming arms read and write again, as registration does.
        self._ring.modify(fd, READ | WRITE if mask else 0)

    def unregister(self, fd: int) -> None:
        self._ring.unregister(fd)

    def wait(self, timeout: float | None) -> list[tuple[int, int]]:
        events: list[tuple[int, int]] = self._ring.poll(timeout)
        return events

    def close(self) -> None:
        self._ring.close()


def make_server(
    config: ServerConfig, listener: socket.socket, stats: ServerStats
) -> EventLoopServer:
    return EventLoopServer(config, UringPollBackend(), listener, stats)
