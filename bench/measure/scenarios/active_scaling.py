"""active-scaling: every connection active, closed loop.

Published work (Gammo et al., OLS 2004) found select and poll comparable to
epoll when no connection is idle: with every descriptor ready, a scan wastes
little. This regime tests that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.measure.drivers import drive_load
from bench.measure.scenarios.registry import Scenario, register
from bench.measure.trial import Backends, Cell, Sweep
from bench.tables import Mode
from servers import registry

NAME = "active-scaling"


@dataclass(frozen=True)
class ActiveScalingSettings:
    active_counts: tuple[int, ...]
    # None: every backend of the run.
    backends: Backends = None


def cells(settings: ActiveScalingSettings, cfg: Any) -> list[Cell]:
    sweep = Sweep(Mode.CLOSED, settings.active_counts, settings.backends)
    backends = sweep.backends_in(cfg.backends)
    if backends == ():
        return []
    return [Cell(NAME, Mode.CLOSED, 0, n, None, backends=backends) for n in settings.active_counts]


SCENARIO = register(
    Scenario(
        name=NAME,
        summary="every connection active, closed loop",
        presets={
            # All-active at the largest count select can hold; all-active with 8
            # connections is the closed-loop idle-scaling cell at 0 idle. The Python
            # family with edge- and level-triggered epoll; the C twins' all-active
            # cells are in "standard" (on one host a C server is client-bound there).
            # 100 connections moved to "standard" on 2026-12-06 to make room for
            # idle-steps: in ten default runs it was never decided in one run (the
            # wait call is 2-4% of server CPU per request there), and default runs
            # on a slower day took 175-190 s against the 180 s budget.
            "quick": ActiveScalingSettings((1000,), registry.PYTHON_LOOP),
            "standard": ActiveScalingSettings((8, 100, 500, 1000, 2000)),
            "full": ActiveScalingSettings((8, 100, 1000, 2000)),
            "tiny": ActiveScalingSettings((4,)),
        },
        cells=cells,
        driver=drive_load,
        charts=("throughput_vs_active",),
    )
)
