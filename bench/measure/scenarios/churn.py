"""churn: a new TCP connection per request (HTTP with ``Connection: close``), closed loop.

Not in "quick": no verdict rule reads it yet, and its trials are the quick
preset's least informative per second of budget (it starts in "standard").

Every new connection costs epoll ``epoll_ctl`` calls that select and poll never
make; this scenario measures servers under that cost.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.measure.drivers import drive_load
from bench.measure.scenarios.registry import Scenario, register
from bench.measure.trial import TRIAL_OVERHEAD_S, Cell, Trial

NAME = "churn"


@dataclass(frozen=True)
class ChurnSettings:
    active_connections: int = 8


def cells(settings: ChurnSettings, cfg: object) -> list[Cell]:
    return [Cell(NAME, "closed", 0, settings.active_connections, None, http_close=True)]


def estimate_s(trial: Trial) -> float:
    # No connections are opened up front: each request opens its own.
    return TRIAL_OVERHEAD_S + trial.warmup_s + trial.measure_s


SCENARIO = register(
    Scenario(
        name=NAME,
        summary="a new connection per request, closed loop",
        presets={
            "standard": ChurnSettings(),
            "full": ChurnSettings(),
            "tiny": ChurnSettings(active_connections=2),
        },
        cells=cells,
        driver=drive_load,
        estimate_s=estimate_s,
    )
)
