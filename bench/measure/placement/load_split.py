"""One trial's load divided over several load hosts, as if one load generator ran it.

The connections are split evenly over the hosts, then each host's share over
its workers with the load generator's own planner (``loadgen.plan``, which
checks the host's ports and picks source addresses); the workers are then
numbered across hosts (worker index, first connection, first active
connection), so that every worker receives the whole run's ``LoadConfig``: the
open-loop schedule staggers every active connection of the run by its global
index at ``rate_rps`` in total, exactly as one host would. The hosts' reports
are merged by ``loadgen.merge`` (HdrHistograms added, never percentiles
averaged).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bench.tables import Mode
from loadgen.config import LoadConfig
from loadgen.plan import WorkerPlan, plan_workers

# Workers per load host: as on one host (bench.measure.config), more only add start-up time.
MAX_WORKERS_PER_HOST = 8


@dataclass(frozen=True)
class LoadSplit:
    """The run's config as every worker receives it, and each host's worker plans."""

    config: LoadConfig
    plans: list[list[WorkerPlan]]  # per host, in the order given; [] for a host left idle

    @property
    def workers(self) -> int:
        return sum(len(p) for p in self.plans)


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def split_load(cfg: LoadConfig, host_cpus: list[int], address: str, is_loopback: bool) -> LoadSplit:
    """Divide ``cfg`` over hosts with these CPU counts; ``address`` is the resolved target."""
    if not host_cpus:
        raise ValueError("no load host to place the load on")
    # Every host holds the same number of connections (+-1), active ones spread evenly too
    # (both splits give their extra ones to the first hosts, so no idle share is negative).
    total = _split(cfg.total_connections, len(host_cpus))
    active = _split(cfg.active_connections, len(host_cpus))
    idle = [t - a for t, a in zip(total, active, strict=True)]
    per_host: list[list[WorkerPlan]] = []
    worker = first_active = first_conn = 0
    for cpus, n_idle, n_active in zip(host_cpus, idle, active, strict=True):
        if n_idle + n_active == 0:
            per_host.append([])
            continue
        # Only the counts matter to the planner; the mode and rate stay the run's.
        share = dataclasses.replace(
            cfg,
            idle_connections=n_idle,
            active_connections=n_active,
            mode=Mode.CLOSED.value,
            rate_rps=None,
            workers=max(1, min(cpus, MAX_WORKERS_PER_HOST)),
            cpus=None,
        )
        plans = []
        for p in plan_workers(share, address, is_loopback):
            rate = None
            if cfg.rate_rps is not None and cfg.active_connections:
                rate = cfg.rate_rps * p.active / cfg.active_connections
            plans.append(
                dataclasses.replace(
                    p,
                    index=worker + p.index,
                    first_active_index=first_active + p.first_active_index,
                    first_connection_index=first_conn + p.first_connection_index,
                    rate_rps=rate,
                )
            )
        per_host.append(plans)
        worker += len(plans)
        first_active += n_active
        first_conn += n_idle + n_active
    whole = dataclasses.replace(cfg, workers=worker, cpus=None)
    return LoadSplit(config=whole, plans=per_host)
