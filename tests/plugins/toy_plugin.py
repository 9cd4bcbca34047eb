"""A backend and a scenario declared outside the project's packages, through the registries alone.

Loaded by ``SELECTBENCH_PLUGINS=toy_plugin`` with this folder on PYTHONPATH, in
bench and in every server process. It proves the README's "Adding a backend"
and "Adding a scenario" steps: nothing inside bench/ or servers/ names them.
"""

from __future__ import annotations

import selectors
import socket
from dataclasses import dataclass

from bench.measure.drivers import drive_load
from bench.measure.scenarios.registry import Scenario, register
from bench.measure.trial import Cell
from servers import registry
from servers.config import ServerConfig
from servers.eventloop import EventLoopServer
from servers.stats import ServerStats

# Poll bits, which the event loop's adapters speak (see servers.backends).
_POLLIN, _POLLOUT = 1, 4


class SelectorsBackend:
    """The event loop's adapter interface on top of the standard library's selectors."""

    name = "toy-selectors"
    edge_triggered = False
    fd_limit: int | None = None

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()

    @staticmethod
    def _events(mask: int) -> int:
        return (selectors.EVENT_READ if mask & _POLLIN else 0) | (
            selectors.EVENT_WRITE if mask & _POLLOUT else 0
        )

    def register(self, fd: int, mask: int) -> None:
        self._sel.register(fd, self._events(mask))

    def modify(self, fd: int, mask: int) -> None:
        self._sel.modify(fd, self._events(mask))

    def unregister(self, fd: int) -> None:
        self._sel.unregister(fd)

    def wait(self, timeout: float | None) -> list[tuple[int, int]]:
        out = []
        for key, events in self._sel.select(timeout):
            mask = (_POLLIN if events & selectors.EVENT_READ else 0) | (
                _POLLOUT if events & selectors.EVENT_WRITE else 0
            )
            out.append((key.fd, mask))
        return out

    def close(self) -> None:
        self._sel.close()


def make_server(config: ServerConfig, listener: socket.socket, stats: ServerStats) -> object:
    return EventLoopServer(config, SelectorsBackend(), listener, stats)


registry.register(
    registry.Backend(
        name="toy-selectors",
        family=registry.FAMILY_PYTHON_LOOP,
        mechanism="epoll",
        wait_instrumented=True,
        fd_number_limit=None,
        colour="#e377c2",
        factory="toy_plugin:make_server",
        description="the shared event loop on selectors.DefaultSelector (a test plugin)",
    )
)


@dataclass(frozen=True)
class ToySettings:
    active_connections: int = 3


def toy_cells(settings: ToySettings, cfg: object) -> list[Cell]:
    return [Cell("toy-pairs", "closed", 0, settings.active_connections, None)]


register(
    Scenario(
        name="toy-pairs",
        summary="a few active connections, closed loop (a test plugin)",
        presets={"tiny": ToySettings()},
        cells=toy_cells,
        driver=drive_load,
    )
)
