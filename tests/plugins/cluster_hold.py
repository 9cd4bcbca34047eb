"""A scenario for the namespace test: one server holding 19,000 connections from three hosts.

Loaded by ``SELECTBENCH_PLUGINS=cluster_hold`` with this folder on PYTHONPATH.
One cell: 18,992 idle connections plus 8 active ones in closed loop on the
epoll server, in the tiny preset. One host cannot make it here: a process
holds at most ~19,990 descriptors (RLIMIT_NOFILE 20,000, not raisable), and
the load generator holds every connection too; three load hosts hold about
6,334 each, and the server its 19,000.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.measure.drivers import drive_load
from bench.measure.scenarios.registry import Scenario, register
from bench.measure.trial import Cell

NAME = "hold-19000"
CONNECTIONS = 19_000


@dataclass(frozen=True)
class HoldSettings:
    active_connections: int = 8


def cells(settings: HoldSettings, cfg: object) -> list[Cell]:
    k = settings.active_connections
    return [Cell(NAME, "closed", CONNECTIONS - k, k, None, backends=("epoll",))]


register(
    Scenario(
        name=NAME,
        summary="19,000 connections on one server, load from several hosts (a test plugin)",
        presets={"tiny": HoldSettings()},
        cells=cells,
        driver=drive_load,
        max_repetitions=1,
    )
)
