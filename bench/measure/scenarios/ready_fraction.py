"""ready-fraction: a fixed number of registered connections, a varying share of them active.

Where is the crossover? At N registered descriptors with K of them active
(closed loop, so each active connection always has a request in flight),
select and poll scan all N on every wait call while epoll returns the ready
ones; each call serves about as many requests as there are ready
descriptors, so the scan's cost per request falls as the active share
K / N grows. At a small share epoll should win by a wide margin; with every
connection active the mechanisms cost about the same (claim 2's all-active
regime). ``bench.analyse.crossover`` fits epoll's throughput ratio against
the share and reports the share where it falls to 1.0.

Registered counts 1,000 and 4,000 (select only at 1,000: the planner leaves
out the cells it cannot hold); active shares 1% to 100%, the rest idle.

Python family only. A C server in closed loop on this host is client-bound:
at 1,000 registered connections (20% and 100% active, standard phases, one
repetition, 2-vCPU VM) c-select was busy 44% and 47% of the window and
c-epoll 34% and 51% (server_busy_fraction), far under the 90% the analysis
needs to call the server the bottleneck (Python epoll: 98% and 99%), so
their throughput measures the load generator. Open loop at a fixed rate does
not rescue it: at a rate the client can send the C server handles each
request long before the next arrives, a wait call returns a few ready
descriptors whatever the active share, and the share stops being the
variable the scenario varies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.measure.drivers import drive_load
from bench.measure.scenarios.registry import Scenario, register
from bench.measure.trial import Backends, Cell, Sweep
from bench.tables import Mode
from servers import registry

NAME = "ready-fraction"


@dataclass(frozen=True)
class ReadyFractionSettings:
    # Registered connections (idle + active) of each sweep.
    registered: tuple[int, ...] = (1000, 4000)
    # Active share of the registered connections (active = share x N, at least 1).
    shares: tuple[float, ...] = (0.01, 0.05, 0.2, 0.5, 1.0)
    backends: Backends = registry.PYTHON_MECHANISMS


def active_count(registered: int, share: float) -> int:
    """Active connections for a share of ``registered`` (rounded, at least 1)."""
    return min(registered, max(1, round(share * registered)))


def cells(settings: ReadyFractionSettings, cfg: Any) -> list[Cell]:
    backends = Sweep(Mode.CLOSED, settings.registered, settings.backends).backends_in(cfg.backends)
    if backends == ():
        return []
    out = []
    for n in settings.registered:
        for share in settings.shares:
            k = active_count(n, share)
            out.append(Cell(NAME, Mode.CLOSED, n - k, k, None, backends=backends))
    return out


SCENARIO = register(
    Scenario(
        name=NAME,
        summary="N registered connections, a share of them active (1%-100%), closed loop",
        presets={
            # Not in "quick": its 180 s budget is spent on the cells of the verdict.
            # In "full" at its 3 repetitions and 2 s windows: 75 trials, ~250 s of
            # its plan (python -m bench run --preset full --dry-run).
            "standard": ReadyFractionSettings(),
            "full": ReadyFractionSettings(),
            "tiny": ReadyFractionSettings(registered=(40,), shares=(0.1, 0.5, 1.0)),
        },
        cells=cells,
        driver=drive_load,
        charts=("ready_fraction_crossover",),
    )
)
