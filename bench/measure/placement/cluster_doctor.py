"""``bench doctor --cluster ADDR``: every host of a Dask cluster, checked as this one would be.

One plain agent (``bench.measure.placement.agents.HostAgent``) is placed on each worker;
it runs the same checks as ``bench doctor`` there (cores, RLIMIT_NOFILE,
ephemeral ports, somaxconn, ...), sized for that host's role: the server host
holds every connection of a trial, each load host its share. bench measures
each host's clock offset and round trip itself. Then the agents are closed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.measure.machine.doctor import Check, format_checks
from bench.measure.placement.agents import HostAgent
from bench.measure.placement.clock import ROUNDS_FIRST, ClockOffset
from bench.measure.placement.cluster import LOAD_RESOURCE, SERVER_RESOURCE, Cluster, Host, worker_ip

# The window's edges widen by the clocks' uncertainty: above this, say so.
UNCERTAINTY_WARN_S = 0.002
# A wall clock this far from ours is not synchronised (the window uses measured offsets,
# but timestamps in the raw documents of different hosts would disagree).
WALL_OFFSET_WARN_S = 0.1


@dataclass
class HostReport:
    host: Host
    checks: list[Check] = field(default_factory=list)


def role_of(resources: dict[str, float]) -> str:
    roles = [r for r in (SERVER_RESOURCE, LOAD_RESOURCE) if resources.get(r, 0) >= 1]
    return "+".join(roles) or "none"


def clock_check(clock: ClockOffset) -> Check:
    value = clock.describe()
    if clock.uncertainty_s > UNCERTAINTY_WARN_S:
        return Check(
            "clock offset",
            value,
            False,
            f"round trip {clock.rtt_s * 1e3:.1f} ms: the window's edges are uncertain by "
            f"+-{clock.uncertainty_s * 1e3:.1f} ms; run bench on a machine close to the hosts "
            "(same switch) and keep the workers idle",
        )
    if abs(clock.offset_wall_s) > WALL_OFFSET_WARN_S:
        return Check(
            "clock offset",
            value,
            False,
            "this host's wall clock is not synchronised with bench's: enable NTP "
            "(`timedatectl set-ntp true` or chrony); the window itself uses the measured offset",
        )
    return Check("clock offset", value, True, severity="ok")


def _role_check(role: str) -> Check:
    if role != "none":
        return Check("role", role, True, severity="ok")
    return Check(
        "role",
        "none",
        False,
        "this worker offers neither server=1 nor load=1, so bench run --cluster does not use "
        "it: restart it with `--resources server=1` (machine under test) or `--resources load=1`",
    )


def check_cluster(address: str, connections: int) -> tuple[list[HostReport], list[Check]]:
    """Per-host reports and the cluster-wide checks (roles present, room for the load)."""
    cluster = Cluster(address)
    try:
        workers = cluster.workers()
        roles = {w: role_of(info.get("resources") or {}) for w, info in workers.items()}
        n_load = sum(LOAD_RESOURCE in r for r in roles.values())
        reports = []
        # The server host first, then the load hosts, each group by address.
        order = sorted(workers, key=lambda w: (SERVER_RESOURCE not in roles[w], w))
        for worker in order:
            info, role = workers[worker], roles[worker]
            host = cluster.place(
                Host(role, worker, str(info.get("name", worker)), worker_ip(worker)),
                HostAgent,
                None,
            )
            share = (
                connections if SERVER_RESOURCE in role else math.ceil(connections / max(1, n_load))
            )
            host.facts = cluster.call(host, "facts", share, timeout_s=60.0)
            cluster.measure_clock(host, ROUNDS_FIRST)
            assert host.clock is not None
            checks = [_role_check(role), *host.facts["checks"], clock_check(host.clock)]
            reports.append(HostReport(host, checks))
        return reports, _cluster_checks(roles, connections)
    finally:
        cluster.close()


def _cluster_checks(roles: dict[str, str], connections: int) -> list[Check]:
    servers = sorted(w for w, r in roles.items() if SERVER_RESOURCE in r)
    loads = sorted(w for w, r in roles.items() if LOAD_RESOURCE in r)
    if not servers:
        server = Check(
            "server hosts",
            "0",
            False,
            "start a worker on the machine under test with `--resources server=1`",
            severity="error",
        )
    elif len(servers) > 1:
        server = Check(
            "server hosts",
            str(len(servers)),
            False,
            f"only the first ({servers[0]}) is used: give server=1 to one worker",
        )
    else:
        server = Check("server hosts", f"1 ({servers[0]})", True, severity="ok")
    if not loads:
        load = Check(
            "load hosts",
            "0",
            False,
            "start a worker on each load machine with `--resources load=1`",
            severity="error",
        )
    else:
        share = math.ceil(connections / len(loads))
        load = Check(
            "load hosts",
            f"{len(loads)} (each holds ~{share:,} of {connections:,} connections)",
            True,
            severity="ok",
        )
    return [server, load]


def format_cluster(address: str, reports: list[HostReport], overall: list[Check]) -> str:
    lines = [f"cluster {address}: {len(reports)} workers", "", format_checks(overall)]
    for report in reports:
        h = report.host
        hostname = h.facts.get("hostname", "?")
        lines += [
            "",
            f"== {h.role} host {hostname} ({h.address}), worker {h.worker} ({h.name}) ==",
            format_checks(report.checks),
        ]
    return "\n".join(lines)


def failed(reports: list[HostReport], overall: list[Check]) -> bool:
    checks = [*overall, *(c for r in reports for c in r.checks)]
    return any(c.severity == "error" and not c.ok for c in checks)
