"""Load drivers: what happens between "server verified" and "server stopped" in one trial.

A driver loads a running server, reads it at the edges of the measured window
and returns the trial's columns; the trial protocol (``bench.measure.protocol``)
does the rest. A scenario names its driver; drivers know no scenario by name.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from bench import metrics
from bench.measure.columns import (
    flag_reasons,
    load_columns,
    server_fact_columns,
    server_window_columns,
)
from bench.measure.machine.disturbance import foreign_cpu_columns
from bench.measure.placement import Edge, Placement, ServerHandle
from bench.measure.probe import fd_limit_probe
from bench.measure.record import metric_columns, record
from bench.measure.trial import Trial
from bench.tables import Mode, utc_now_iso
from loadgen import LoadConfig, LoadResult

if TYPE_CHECKING:
    from bench.measure.config import BenchConfig

# Payload of echo requests (the http protocol has a fixed request).
PAYLOAD_BYTES = 64


@dataclass
class TrialContext:
    """What a driver gets: the run's config, the trial, where it runs, its running server."""

    cfg: BenchConfig
    trial: Trial
    placement: Placement
    server: ServerHandle
    # The trial's raw document (stored under raw/); drivers add what they measured.
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def phases(self) -> dict[str, Any]:
        return self.raw.setdefault("phases", {})


@dataclass(frozen=True)
class DriverOutput:
    """The columns a driver measured and why its trial should not be trusted (if so)."""

    columns: dict[str, Any]
    flag_reasons: list[str]
    # The load generator was interrupted by the user (Ctrl-C) and returned a partial result.
    interrupted: bool = False


class Driver(Protocol):
    def __call__(self, ctx: TrialContext) -> DriverOutput: ...


def load_config(ctx: TrialContext) -> LoadConfig:
    """The load generator's config for one trial (built directly: loadgen owns the type)."""
    t, cfg = ctx.trial, ctx.cfg
    return LoadConfig(
        host=ctx.server.host,
        port=ctx.server.port,
        protocol=t.protocol,
        idle_connections=t.idle_connections,
        active_connections=t.active_connections,
        mode=Mode.OPEN.value if t.mode == Mode.OPEN else Mode.CLOSED.value,
        rate_rps=t.rate_rps_requested,
        measure_s=t.measure_s,
        warmup_s=t.warmup_s,
        workers=cfg.loadgen_workers,
        cpus=tuple(cfg.loadgen_cpus),
        payload_bytes=PAYLOAD_BYTES,
        new_connection_per_request=t.http_close,
    )


def drive_load(ctx: TrialContext) -> DriverOutput:
    """Run the load generator; read the server at the two edges of its measured window."""
    return drive_load_with(ctx)


def drive_load_with(
    ctx: TrialContext,
    replace_measure_s: float | None = None,
    during: Callable[[float], None] | None = None,
) -> DriverOutput:
    """drive_load with another window length, and ``during`` run in a thread through it.

    ``during`` gets the monotonic time the load generator's window ends and must
    return by then (it is joined when the window ends). Exceptions in it end the
    trial as a failure, like the driver's own.
    """
    edges: dict[str, Edge] = {}
    cfg = load_config(ctx)
    if replace_measure_s is not None:
        cfg = dataclasses.replace(cfg, measure_s=replace_measure_s)
    worker: dict[str, Any] = {}

    def run_during(window_end: float) -> None:
        try:
            during(window_end)  # type: ignore[misc]
        except BaseException as exc:  # re-raised in the driver's thread
            worker["error"] = exc

    def on_measure_start() -> None:
        edges["start"] = ctx.server.edge()
        ctx.phases["measure_start_utc"] = edges["start"].utc
        if during is not None:
            end = time.monotonic() + cfg.measure_s
            worker["thread"] = threading.Thread(target=run_during, args=(end,), daemon=True)
            worker["thread"].start()

    def on_measure_end() -> None:
        if "thread" in worker:
            worker["thread"].join()
        edges["end"] = ctx.server.edge()
        ctx.phases["measure_end_utc"] = edges["end"].utc

    ctx.phases["load_start_utc"] = utc_now_iso()
    doc = ctx.placement.run_load(cfg, on_measure_start, on_measure_end)
    if "error" in worker:
        raise worker["error"]
    ctx.phases["load_end_utc"] = utc_now_iso()
    ctx.raw["server_edges"] = {k: e.as_dict() for k, e in edges.items()}
    ctx.raw["loadgen"] = doc
    result = LoadResult.from_dict(doc)
    if result.partial and result.interrupted:
        return DriverOutput(columns={}, flag_reasons=[], interrupted=True)
    if "start" not in edges or "end" not in edges:
        raise RuntimeError("the load generator never reached the measured window")
    columns = load_columns(ctx.trial, result)
    polled_s = sum(w.polled_s for w in result.workers)
    columns.update(server_window_columns(edges["start"], edges["end"], polled_s))
    start, end = edges["start"].stats, edges["end"].stats
    if ctx.trial.http_close and start is not None and end is not None:
        # Churn: each request is its own connection, so "served" is what the
        # server accepted in the window, not what it still holds at its end.
        columns[metrics.CONNECTIONS_SERVED.name] = start.delta(end).accepted
    placed = result.placement or {}
    columns.update(
        foreign_cpu_columns(
            edges["start"],
            edges["end"],
            result,
            ctx.cfg.server_cpu if not placed else None,
            ctx.cfg.loadgen_cpus,
            across_hosts=bool(placed),
        )
    )
    if placed:
        # Across hosts the edges' /proc/stat is the server host's alone: the load
        # generator's CPU is elsewhere, so the whole cost per request is not known.
        columns[metrics.MACHINE_CPU_US_PER_REQ.name] = None
    # Metrics registered from outside the packages (bench.metrics.register) last: they
    # may read the built-in columns.
    columns.update(metric_columns(record(ctx.trial, result, edges["start"], edges["end"], columns)))
    reasons = flag_reasons(ctx.trial, columns, result)
    # Across hosts (DaskPlacement) the server's two reads must fall outside every host's
    # window by the clocks' uncertainty; when scheduling made one late, say so.
    edges = placed.get("server_edges") or {}
    if edges.get("bracketed") is False:
        reasons.append("edges_not_bracketing_window")
    return DriverOutput(columns, reasons)


# fd-limit: how long to wait for the server to accept every offered connection,
# and how long a stalled accept count may stay still before we stop waiting.
PROBE_ACCEPT_DEADLINE_S = 5.0
PROBE_ACCEPT_STALL_S = 0.5


def drive_probe(ctx: TrialContext) -> DriverOutput:
    """Offer N plain connections, one request each; record what each client saw."""
    server = ctx.server
    edges: dict[str, Edge] = {"start": server.edge()}
    base = edges["start"].stats.accepted if edges["start"].stats is not None else 0

    def wait_accepted(n: int) -> None:
        # The server decides each connection's fate at accept; wait for all of them
        # (or for the count to stop moving), then read its state with every socket open.
        deadline = time.monotonic() + PROBE_ACCEPT_DEADLINE_S
        last, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            stats = server.edge(with_process=False).stats
            done = (stats.accepted if stats is not None else 0) - base
            if done >= n:
                break
            if done != last:
                last, last_change = done, time.monotonic()
            elif time.monotonic() - last_change > PROBE_ACCEPT_STALL_S:
                break
            time.sleep(0.02)
        edges["end"] = server.edge()

    ctx.phases["measure_start_utc"] = utc_now_iso()
    probe = fd_limit_probe(
        server.host, server.port, ctx.trial.probe_connections, wait_accepted=wait_accepted
    )
    ctx.phases["measure_end_utc"] = utc_now_iso()
    ctx.raw["server_edges"] = {k: e.as_dict() for k, e in edges.items()}
    ctx.raw["probe"] = {
        "requested": probe.requested,
        "established": probe.established,
        "connect_errors": probe.connect_errors,
        "observations": probe.observations,
        "served": probe.served,
    }
    start, end = edges["start"], edges.get("end") or edges["start"]
    window = server_window_columns(start, end)
    rejected = (
        start.stats.delta(end.stats).rejected_fd_setsize
        if start.stats is not None and end.stats is not None
        else None
    )
    columns = {
        metrics.REQUESTS.name: probe.served,
        metrics.ERRORS.name: probe.requested - probe.served,
        metrics.SERVER_RSS_BYTES.name: window[metrics.SERVER_RSS_BYTES.name],
        metrics.SERVER_NUM_FDS.name: window[metrics.SERVER_NUM_FDS.name],
        metrics.SERVER_CURRENT_CONNECTIONS.name: (
            end.stats.current_connections if end.stats else None
        ),
        metrics.SERVER_REJECTED_FD_SETSIZE.name: rejected,
        metrics.CONNECTIONS_ESTABLISHED.name: probe.established,
        metrics.CONNECTIONS_SERVED.name: probe.served,
        metrics.CONNECTIONS_REJECTED.name: rejected,
        metrics.CONNECT_ERRORS.name: sum(probe.connect_errors.values()),
        metrics.CLIENT_OBSERVATION.name: json.dumps(probe.observations, sort_keys=True),
        **(server_fact_columns(end.stats) if end.stats is not None else {}),
    }
    # What each client saw is the result here, not an error; only silence is suspect.
    reasons = ["probe_timeouts"] if "timeout" in probe.observations else []
    return DriverOutput(columns, reasons)
