"""The blocks of a load result (loadgen.result.LoadResult), each with its own keys.

Times are epoch seconds unless named ``_ns``/``_s``; latencies are
microseconds. Each block's ``to_dict`` writes its keys and ``from_dict``
reads them (a missing key raises KeyError, which LoadResult.from_dict turns
into a ResultFormatError naming it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The phases of a run, in order (loadgen.run's timeline).
PHASE_NAMES = (
    "connect_start",
    "connect_end",
    "warmup_start",
    "measure_start",
    "measure_end",
    "drain_end",
)


@dataclass(frozen=True)
class LatencySummary:
    """One latency distribution in microseconds (None when nothing was measured)."""

    p50: int | None
    p90: int | None
    p99: int | None
    p99_9: int | None
    max: int | None
    mean: float | None
    count: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LatencySummary:
        return cls(
            p50=d["p50"],
            p90=d["p90"],
            p99=d["p99"],
            p99_9=d["p99_9"],
            max=d["max"],
            mean=d["mean"],
            count=int(d["count"]),
        )


@dataclass(frozen=True)
class SendLagSummary:
    """Open loop: actual minus intended send time, microseconds (None when not measured)."""

    p50: int | None
    p99: int | None
    max: int | None
    count: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SendLagSummary:
        return cls(p50=d["p50"], p99=d["p99"], max=d["max"], count=int(d["count"]))


NO_SEND_LAG = SendLagSummary(p50=None, p99=None, max=None, count=0)


@dataclass(frozen=True)
class Phases:
    """Epoch-second instants the run's phases began (None for a phase that never started,
    or that the caller did not time: across hosts the connects are not timed)."""

    connect_start: float | None = None
    connect_end: float | None = None
    warmup_start: float | None = None
    measure_start: float | None = None
    measure_end: float | None = None
    drain_end: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Phases:
        return cls(**{name: d[name] for name in PHASE_NAMES})


@dataclass(frozen=True)
class ConnectionCounts:
    """The ``connections`` block: what was asked for, opened, and alive at the end."""

    idle_requested: int
    idle_established: int
    active_requested: int
    # Churn (new_connection_per_request): the active slots, not open connections.
    active_established: int
    idle_alive_at_end: int
    active_alive_at_end: int
    connect_duration_s: float | None  # the slowest worker's
    # {ECONNREFUSED, EMFILE, EADDRNOTAVAIL, ETIMEDOUT, ECONNRESET, other}; in churn
    # mode and for failed reconnects it includes connects that failed during the run.
    connect_errors: dict[str, int]
    # 1: the parent's probe connection, which the server also counts as accepted.
    precheck_connections: int
    # TCP handshakes the workers completed over the whole run: idle + active, plus one
    # per request in churn mode, plus the reconnects. The server's ``accepted`` delta
    # equals this + precheck_connections in a run without connect errors.
    connections_opened: int
    new_connection_per_request: bool

    @property
    def established(self) -> int:
        """Idle + active connections established before the run."""
        return self.idle_established + self.active_established

    @property
    def requested(self) -> int:
        return self.idle_requested + self.active_requested

    @property
    def connect_errors_total(self) -> int:
        return sum(self.connect_errors.values())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ConnectionCounts:
        return cls(
            idle_requested=int(d["idle_requested"]),
            idle_established=int(d["idle_established"]),
            active_requested=int(d["active_requested"]),
            active_established=int(d["active_established"]),
            idle_alive_at_end=int(d["idle_alive_at_end"]),
            active_alive_at_end=int(d["active_alive_at_end"]),
            connect_duration_s=d["connect_duration_s"],
            connect_errors={k: int(v) for k, v in d["connect_errors"].items()},
            precheck_connections=int(d["precheck_connections"]),
            connections_opened=int(d["connections_opened"]),
            new_connection_per_request=bool(d["new_connection_per_request"]),
        )


@dataclass(frozen=True)
class TimeseriesPoint:
    """One interval of the measured window (``t_s`` from its start); percentiles of the
    corrected latency, None when nothing completed in it."""

    t_s: int
    requests: int
    errors: int
    p50_us: int | None
    p99_us: int | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TimeseriesPoint:
        return cls(
            t_s=int(d["t_s"]),
            requests=int(d["requests"]),
            errors=int(d["errors"]),
            p50_us=d["p50_us"],
            p99_us=d["p99_us"],
        )


@dataclass(frozen=True)
class WorkerSummary:
    """One worker's line in the result: its share, its CPU over the window, its hold."""

    worker: int
    pid: int
    cpu: int | None  # the CPU it was pinned to
    idle_established: int
    active_established: int
    requests: int  # answered inside the window
    requests_total: int
    errors: int  # request errors over the whole run
    cpu_user_s: float  # over the window
    cpu_system_s: float
    busy_fraction: float  # (user + system - polled) / window: the work, not the waiting
    rss_bytes_after_connect: int
    connect_duration_s: float | None
    # How the hold after the window ended: "parent" (the release, sent once
    # on_measure_end returned), "timeout" (LoadConfig.release_timeout_s passed first:
    # it closed its connections while the parent may still have been reading the
    # server), "stop", or "not_held" (the run never started). None: a version-1
    # document written before the hold existed.
    release: str | None
    hold_s: float | None  # how long it held (None as for release)
    core: str  # the loop it ran: "c" (loadgen._cload) or "python"
    # CPU time in the window spent polling for answers (closed loop on the core), part of
    # cpu_user_s + cpu_system_s and left out of busy_fraction; 0.0 before version 4.
    polled_s: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WorkerSummary:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})


__all__ = [
    "NO_SEND_LAG",
    "PHASE_NAMES",
    "ConnectionCounts",
    "LatencySummary",
    "Phases",
    "SendLagSummary",
    "TimeseriesPoint",
    "WorkerSummary",
]
