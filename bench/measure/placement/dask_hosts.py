"""DaskPlacement: the server on the machine under test, the load from other machines.

The same seam as ``LocalPlacement`` (``bench.measure.placement``), over a Dask
cluster (``bench.measure.placement.cluster``): the server agent starts, pins, reads and
stops the server; the load agents run the load generator's workers and return
their raw reports (HdrHistograms encoded), which are merged here by
``loadgen.merge`` as if one load generator had run them all.

One window across hosts. Before every trial each host's clock is measured
against ours (``bench.measure.placement.clock``: offset and its bound, half the best
round trip). Warm-up start, window start and window end are chosen on our
CLOCK_MONOTONIC far enough ahead for the word to arrive (``START_LEAD_S`` plus
four round trips), converted to each host's clock, and handed to every agent:
each load host measures the same interval, within its clock's uncertainty. The
server agent reads the server ``margin`` before the window's start and
``margin`` after its end, where margin is the server's uncertainty plus the
largest load host's plus ``EDGE_JITTER_S``, so its two readings bracket every
host's window. The load workers hold every connection until bench has the end
reading, then are released (as on one host).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from bench.measure.placement import Edge, ServerHandle
from bench.measure.placement.agents import LoadAgent, ServerAgent
from bench.measure.placement.clock import ROUNDS_PER_TRIAL
from bench.measure.placement.cluster import (
    LOAD_RESOURCE,
    SERVER_RESOURCE,
    Cluster,
    ClusterError,
    Host,
    HostLost,
    is_loopback,
)
from bench.measure.placement.load_split import split_load
from loadgen import LoadConfig
from loadgen.merge import merge_results
from loadgen.report import ConnectInfo
from loadgen.result_parts import Phases
from servers.config import ServerConfig

# Our lead before the warm-up starts, on top of four round trips to the slowest host.
START_LEAD_S = 0.1
# Added to the clocks' uncertainties: a reading thread's wake-up and the read itself.
EDGE_JITTER_S = 0.002
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 15.0
FACTS_TIMEOUT_S = 60.0
# Margin on the load generator's own connect budget (loadgen.run uses the same 60 s).
CONNECT_SLACK_S = 60.0


class DaskServer:
    """The server on the server host, seen through ServerHandle."""

    def __init__(self, cluster: Cluster, host: Host, info: dict[str, Any]) -> None:
        self._cluster = cluster
        self._host = host
        self.pid: int = info["pid"]
        self.port: int = info["port"]
        self.host: str = info["host"]
        self.ready_info: dict[str, Any] = dict(info["ready_info"])
        self.ready_info["placement_host"] = host.label
        self.ready_info["placement_cpu"] = info["cpu"]
        # Edges the server agent reads itself at scheduled instants (see run_load);
        # edge() hands them out in order instead of reading now.
        self.scheduled: collections.deque[tuple[str, float]] = collections.deque()
        self.handed: dict[str, Edge] = {}

    def edge(self, *, with_process: bool = True) -> Edge:
        if self.scheduled:
            name, timeout_s = self.scheduled.popleft()
            edge: Edge = self._cluster.call(
                self._host, "scheduled_edge", name, timeout_s, timeout_s=timeout_s + 30.0
            )
            self.handed[name] = edge
            return edge
        return self._cluster.call(self._host, "edge", with_process, timeout_s=CALL_TIMEOUT_S)

    def exit_reason(self) -> str | None:
        if self._host.lost:
            return self._host.lost
        try:
            reason = self._cluster.call(self._host, "exit_reason", timeout_s=CALL_TIMEOUT_S)
        except HostLost as exc:
            return str(exc)
        return None if reason is None else f"server process exited during the trial ({reason})"

    def stderr_tail(self, limit: int = 2000) -> str | None:
        with contextlib.suppress(Exception):
            return self._cluster.call(self._host, "stderr_tail", limit, timeout_s=CALL_TIMEOUT_S)
        return None


class DaskPlacement:
    """Every trial's server on the ``server=1`` worker, its load on the ``load=1`` workers."""

    def __init__(self, address: str, allow_remote: Sequence[str] = ()) -> None:
        self.allow_remote = tuple(dict.fromkeys(allow_remote))
        self.cluster = Cluster(address)
        self._current: DaskServer | None = None
        self._ended = False
        try:
            self.server_host, self.load_hosts = self._place()
        except BaseException:
            self.cluster.close()
            raise

    def _place(self) -> tuple[Host, list[Host]]:
        servers = self.cluster.hosts_with(SERVER_RESOURCE)
        loads = self.cluster.hosts_with(LOAD_RESOURCE)
        hint = "`dask worker {addr} --resources {r}=1 --nthreads 1` (docs/cluster.md)"
        if not servers:
            raise ClusterError(
                f"no worker of {self.cluster.address} offers the resource server=1: start one on "
                "the machine under test with " + hint.format(addr=self.cluster.address, r="server")
            )
        if not loads:
            raise ClusterError(
                f"no worker of {self.cluster.address} offers the resource load=1: start one on "
                "each load machine with " + hint.format(addr=self.cluster.address, r="load")
            )
        server = servers[0]
        if not is_loopback(server.address) and server.address not in self.allow_remote:
            raise ClusterError(
                f"the server host's address {server.address} is not a loopback address: pass "
                f"--allow-remote {server.address} to let bench and the load generators connect "
                "to it (only the addresses given are allowed)"
            )
        self.cluster.place(server, ServerAgent, SERVER_RESOURCE)
        for host in loads:
            self.cluster.place(host, LoadAgent, LOAD_RESOURCE)
        for host in (server, *loads):
            host.facts = self.cluster.call(host, "facts", timeout_s=FACTS_TIMEOUT_S)
            self.cluster.measure_clock(host)
        return server, loads

    # ------------------------------------------------------------ run.json and checks
    def describe(self) -> dict[str, Any]:
        """run.json's ``placement``: the scheduler, every host and its clock."""
        return {
            "kind": "dask",
            "scheduler": self.cluster.address,
            "bench_host": socket.gethostname(),
            "allow_remote": list(self.allow_remote),
            "clock_method": (
                "Cristian: best of N round trips per host; offset = host clock - midpoint of "
                "ours, uncertainty = half that round trip; measured at the start and before "
                "every trial"
            ),
            "hosts": [h.describe() for h in (self.server_host, *self.load_hosts)],
        }

    def warnings(self) -> list[str]:
        """What a reader of this run should know about where things ran."""
        out = [
            f"micro benchmarks (if any) ran on the host running bench ({socket.gethostname()}), "
            f"not on the server host ({self.server_host.label})"
        ]
        commits = {
            (h.facts.get("git") or {}).get("commit") for h in (self.server_host, *self.load_hosts)
        }
        if len(commits) > 1:
            out.append(f"the hosts run different checkouts: commits {sorted(map(str, commits))}")
        return out

    def check_limits(self, max_connections: int) -> None:
        """LimitError when the server host cannot hold the largest trial's connections."""
        from bench.measure.machine.doctor import FD_MARGIN, LimitError

        limits = self.server_host.facts.get("machine", {}).get("rlimit_nofile") or {}
        hard = limits.get("hard")
        if hard is not None and max_connections + FD_MARGIN > hard:
            raise LimitError(
                f"{self.server_host.label}: RLIMIT_NOFILE hard limit {hard} cannot hold the "
                f"largest trial's {max_connections} connections (+{FD_MARGIN}): raise it there "
                "(`ulimit -n`, limits.conf) or choose a smaller preset"
            )

    def _target(self, address: str) -> None:
        if not is_loopback(address) and address not in self.allow_remote:
            raise ClusterError(
                f"target {address} is not loopback and not among --allow-remote "
                f"{list(self.allow_remote)}: refusing to send load there"
            )

    def _live_loads(self) -> list[Host]:
        live = [h for h in self.load_hosts if h.lost is None]
        if not live:
            reasons = "; ".join(str(h.lost) for h in self.load_hosts)
            raise HostLost(f"no load host is left: {reasons}")
        return live

    # ------------------------------------------------------------ the Placement seam
    @contextlib.contextmanager
    def server(self, config: ServerConfig) -> Iterator[ServerHandle]:
        host = self.server_host
        if host.lost:
            raise HostLost(host.lost)
        address = host.address
        self._target(address)
        config = dataclasses.replace(config, host=address, allow_remote=not is_loopback(address))
        info = self.cluster.call(host, "start", config, timeout_s=START_TIMEOUT_S)
        handle = DaskServer(self.cluster, host, info)
        self._current = handle
        try:
            yield handle
        finally:
            self._current = None
            with contextlib.suppress(Exception):
                self.cluster.call(host, "stop", timeout_s=STOP_TIMEOUT_S)

    def run_load(
        self,
        config: LoadConfig,
        on_measure_start: Callable[[], None],
        on_measure_end: Callable[[], None],
    ) -> dict[str, Any]:
        self._target(config.host)
        hosts = self._live_loads()
        config = dataclasses.replace(config, allow_remote=True, cpus=None)
        split = split_load(config, [h.cpus for h in hosts], config.host, is_loopback(config.host))
        used = [(h, p) for h, p in zip(hosts, split.plans, strict=True) if p]
        hosts = [h for h, _ in used]
        server = self._current if self._current and self._current.port == config.port else None
        clocked = [*hosts, self.server_host] if server else hosts
        for host in clocked:
            self.cluster.measure_clock(host, ROUNDS_PER_TRIAL)
        budget = config.total_connections / (config.connect_rate or 1e9)
        budget += config.connect_timeout_s + CONNECT_SLACK_S
        try:
            connected = self.cluster.call_all(
                hosts, "prepare", [(split.config, p, budget) for _, p in used], budget + 30.0
            )
            return self._window(
                split.config, hosts, connected, server, on_measure_start, on_measure_end
            )
        except BaseException:
            self._abort(hosts)
            if server is not None:
                server.scheduled.clear()
            raise

    def _abort(self, hosts: list[Host]) -> None:
        for host in hosts:
            if host.lost is None:
                with contextlib.suppress(Exception):
                    self.cluster.call(host, "abort", timeout_s=CALL_TIMEOUT_S)

    def _window(
        self,
        cfg: LoadConfig,
        hosts: list[Host],
        connected: list[list[ConnectInfo]],
        server: DaskServer | None,
        on_measure_start: Callable[[], None],
        on_measure_end: Callable[[], None],
    ) -> dict[str, Any]:
        clocks = {id(h): h.clocks[-1] if h.clocks else h.clock for h in (*hosts, self.server_host)}
        rtt = max(c.rtt_s for c in clocks.values() if c is not None)
        margin = EDGE_JITTER_S + max(clocks[id(h)].uncertainty_s for h in hosts)
        server_clock = clocks[id(self.server_host)]
        if server is not None:
            margin += server_clock.uncertainty_s
        wall_minus_mono = time.time() - time.monotonic()
        warm = time.monotonic_ns() + int((START_LEAD_S + 4 * rtt) * 1e9)
        start = warm + int(cfg.warmup_s * 1e9)
        end = start + int(cfg.measure_s * 1e9)
        margin_ns = int(margin * 1e9)
        if server is not None:
            server.handed.clear()
            self.cluster.call(
                self.server_host,
                "schedule_edges",
                server_clock.to_host_ns(start - margin_ns),
                server_clock.to_host_ns(end + margin_ns),
                timeout_s=CALL_TIMEOUT_S,
            )
            wait_s = cfg.warmup_s + cfg.measure_s + START_LEAD_S + 4 * rtt
            server.scheduled.extend([("start", wait_s), ("end", wait_s)])
        args = [tuple(clocks[id(h)].to_host_ns(t) for t in (warm, start, end)) for h in hosts]
        late = self.cluster.call_all(hosts, "go", args, CALL_TIMEOUT_S)
        _sleep_until_ns(start + margin_ns)
        on_measure_start()
        _sleep_until_ns(end + margin_ns)
        on_measure_end()
        finished = self.cluster.call_all(
            hosts,
            "finish",
            [(cfg.request_timeout_s + 30.0,)] * len(hosts),
            cfg.request_timeout_s + 60.0,
        )
        missing = sorted(i for f in finished for i in f.missing_workers)
        result = merge_results(
            cfg,
            target_address=cfg.host,
            sources=tuple(dict.fromkeys(s for f in finished for s in f.sources)),
            connected=sorted((c for part in connected for c in part), key=lambda c: c.worker),
            reports=sorted((r for f in finished for r in f.reports), key=lambda r: r.worker),
            cpu={int(i): u for f in finished for i, u in f.cpu.items()},
            phases=Phases(
                warmup_start=round(warm / 1e9 + wall_minus_mono, 6),
                measure_start=round(start / 1e9 + wall_minus_mono, 6),
                measure_end=round(end / 1e9 + wall_minus_mono, 6),
                drain_end=round(time.time(), 6),
            ),
            measured_duration_s=cfg.measure_s,
            partial=bool(missing),
            interrupted=False,
            partial_reason=f"workers {missing} sent no result within the deadline"
            if missing
            else None,
        )
        placement = {
            "kind": "dask",
            "window_margin_s": round(margin, 9),
            "server_host": self.server_host.label if server else None,
            "server_clock": server_clock.as_dict() if server else None,
            "server_edges": _bracket(
                server, server_clock.to_host_ns(start), server_clock.to_host_ns(end), margin
            ),
            "hosts": [
                {
                    "host": h.label,
                    "workers": [c.worker for c in part],
                    "connections": sum(c.idle_established + c.active_established for c in part),
                    "late_s": round(float(lag), 6),
                    "clock": clocks[id(h)].as_dict(),
                }
                for h, part, lag in zip(hosts, connected, late, strict=True)
            ],
        }
        return dataclasses.replace(result, placement=placement).to_dict()

    def end_all(self) -> list[int]:
        """Every agent ends what it started (servers, load workers, leashes); the client
        closes. Idempotent; returns nothing to reap here (no local children)."""
        if not self._ended:
            self._ended = True
            self.cluster.close()
        return []


def _bracket(
    server: DaskServer | None, start_ns: int, end_ns: int, margin_s: float
) -> dict[str, Any] | None:
    """How far outside the window (on the server's clock) its two readings finished."""
    if server is None or set(server.handed) != {"start", "end"}:
        return None
    before = start_ns / 1e9 - _instant_s(server.handed["start"])
    after = _instant_s(server.handed["end"]) - end_ns / 1e9
    # The readings bracket every host's window when each is outside it by at least
    # the clocks' uncertainties (margin less the jitter allowance).
    need = margin_s - EDGE_JITTER_S
    return {
        "start_before_window_s": round(before, 6),
        "end_after_window_s": round(after, 6),
        "bracketed": before >= need and after >= need,
    }


def _instant_s(edge: Edge) -> float:
    """When the server took its counters (its own CLOCK_MONOTONIC), else when the read ended."""
    return edge.stats.time_ns / 1e9 if edge.stats is not None else edge.monotonic_s


def _sleep_until_ns(deadline_ns: int) -> None:
    remaining = (deadline_ns - time.monotonic_ns()) / 1e9
    if remaining > 0:
        time.sleep(remaining)
