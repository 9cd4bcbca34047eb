"""The result of one load run: ``LoadResult``, the only writer and reader of its document.

loadgen.merge builds a LoadResult from the workers' reports; ``to_dict()``
is the JSON-serialisable document that loadgen.run returns and bench stores
as is; ``LoadResult.from_dict(doc)`` reads one back, migrating a document of
an older ``schema_version`` first. Each field is documented once, below.

Versions: 5 (this one) counts the open loop's spin before each send in
``workers[].polled_s`` (waiting, like the closed loop's polling); before it the spin was
in the busy time (``_v4_to_v5`` changes nothing: an older open-loop document keeps its
0.0 and its busy fraction with the spin in it). 4 added ``workers[].polled_s``, the
closed loop's time spent polling for answers, which ``busy_fraction`` and
``loadgen_cpu_us_per_req`` leave out (``_v3_to_v4``: 0.0, no loop polled before
version 4). 3 added ``loadgen_core`` and ``workers[].core``, the loop that sent and
received (``_v2_to_v3``: "python", the only loop before version 3).
Version 1 documents gained keys after they were first
written (``release_timeouts``, ``workers[].release``/``hold_s``,
``send_lag_us``, ``histogram_send_lag``, ``reconnects``,
``reconnects_measured``, ``reconnect_rate_per_s``) and could lack
``placement`` and the connect phases; ``_v1_to_v2`` gives each the value
that meant "not measured then". Version 2 has every key in every document.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from loadgen.errors import ResultFormatError, UnknownResultVersion
from loadgen.result_parts import (
    NO_SEND_LAG,
    PHASE_NAMES,
    ConnectionCounts,
    LatencySummary,
    Phases,
    SendLagSummary,
    TimeseriesPoint,
    WorkerSummary,
)

SCHEMA_VERSION: Final = 5
VERSION_KEY: Final = "schema_version"
# A worker busy (CPU time / window) at least this much may have been the bottleneck.
SATURATED_BUSY_FRACTION: Final = 0.90
# Open loop: an achieved rate below this share of the requested one is a shortfall.
RATE_SHORTFALL_RATIO: Final = 0.95


def rate_shortfall(achieved_rate_ratio: float | None) -> bool:
    """Whether the achieved / requested rate falls short (None: closed loop, never short)."""
    return achieved_rate_ratio is not None and achieved_rate_ratio < RATE_SHORTFALL_RATIO


@dataclass(frozen=True)
class LoadResult:
    """One load run, typed. Counts cover the measured window unless said otherwise."""

    # The run was interrupted (SIGINT / stop) or a worker failed; counts then cover
    # only what happened before the stop.
    partial: bool
    interrupted: bool  # SIGINT/stop was the reason
    partial_reason: str | None  # "interrupted by SIGINT", or which workers did not report
    config: dict[str, Any]  # the LoadConfig as a dict (``measure_s`` is the window)
    target_address: str  # resolved
    source_addresses: tuple[str, ...]  # bound source addresses (empty: kernel default)
    phases: Phases
    connections: ConnectionCounts
    requests: int  # responses completed inside the window
    requests_sent: int  # requests sent inside the window
    # Responses over the whole run (warm-up + window + drain). The server's request
    # counter, read after the connections closed, equals this in a run without errors.
    requests_total: int
    warmup_requests: int
    drain_requests: int
    unanswered_at_end: int
    # Keep-alive connections the server closed cleanly (after a complete answer) that
    # were replaced at once for the same slot, over the whole run: the server's policy,
    # not errors. A reconnect that fails is an ``unexpected_close``. Always 0 in churn.
    reconnects: int
    reconnects_measured: int  # ... inside the window
    reconnect_rate_per_s: float | None  # reconnects_measured / measured_duration_s
    # {bad_response, unexpected_close, timeout, send_error} over the whole run.
    errors: dict[str, int]
    errors_total: int
    errors_measured: int  # inside the window
    error_samples: tuple[str, ...]  # a few messages
    measured_duration_s: float
    throughput_rps: float  # requests / measured_duration_s
    requested_rate_rps: float | None  # None in closed loop
    achieved_rate_rps: float | None  # open loop: requests_sent / measured_duration_s
    achieved_rate_ratio: float | None  # achieved / requested
    rate_shortfall: bool  # rate_shortfall(achieved_rate_ratio)
    # Corrected latency runs from the intended send time (open loop, coordinated
    # omission corrected as in wrk2), uncorrected from the actual send; the same in
    # closed loop. With new_connection_per_request a request's latency includes its
    # connect: it runs from the connect's start (closed loop, and uncorrected) or
    # from the intended send time (open loop, corrected).
    latency_corrected: LatencySummary
    latency_uncorrected: LatencySummary
    latency_clamped: int  # values outside 1 us..60 s, clamped into the range
    # HdrHistograms, encoded (base64 compressed, values in us; loadgen.histogram.decode).
    histogram_corrected: str | None
    histogram_uncorrected: str | None
    # Open loop, per request sent in the window: actual minus intended send time (0 =
    # on time, within 1 us); the client's own lateness, which the corrected latency
    # includes. In churn the "send" is the connect's start. No values in closed loop.
    send_lag_us: SendLagSummary
    histogram_send_lag: str | None  # None in closed loop
    timeseries_interval_s: int
    timeseries: tuple[TimeseriesPoint, ...]
    workers: tuple[WorkerSummary, ...]
    # All workers' CPU in the window per request, less their polling for answers.
    loadgen_cpu_us_per_req: float | None
    max_busy_fraction: float
    saturated: bool  # max_busy_fraction >= SATURATED_BUSY_FRACTION
    release_timeouts: int  # workers whose hold ended by timeout (0 in a sound run)
    # How the workers were placed across hosts, written by the caller that placed them
    # (bench's DaskPlacement); None when one loadgen.run ran them all.
    placement: dict[str, Any] | None
    # The loop the workers ran: "c" (the compiled core, loadgen._cload), "python" (the
    # Python loop: the core not built, or SELECTBENCH_LOADGEN_CORE=python), "mixed"
    # when workers differed; None when no worker reported.
    loadgen_core: str | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-serialisable document (``schema_version`` SCHEMA_VERSION)."""
        return {
            VERSION_KEY: SCHEMA_VERSION,
            "partial": self.partial,
            "interrupted": self.interrupted,
            "partial_reason": self.partial_reason,
            "config": dict(self.config),
            "target_address": self.target_address,
            "source_addresses": list(self.source_addresses),
            "phases": self.phases.to_dict(),
            "connections": self.connections.to_dict(),
            "requests": self.requests,
            "requests_sent": self.requests_sent,
            "requests_total": self.requests_total,
            "warmup_requests": self.warmup_requests,
            "drain_requests": self.drain_requests,
            "unanswered_at_end": self.unanswered_at_end,
            "reconnects": self.reconnects,
            "reconnects_measured": self.reconnects_measured,
            "reconnect_rate_per_s": self.reconnect_rate_per_s,
            "errors": dict(self.errors),
            "errors_total": self.errors_total,
            "errors_measured": self.errors_measured,
            "error_samples": list(self.error_samples),
            "measured_duration_s": self.measured_duration_s,
            "throughput_rps": self.throughput_rps,
            "requested_rate_rps": self.requested_rate_rps,
            "achieved_rate_rps": self.achieved_rate_rps,
            "achieved_rate_ratio": self.achieved_rate_ratio,
            "rate_shortfall": self.rate_shortfall,
            "latency_us": {
                "corrected": self.latency_corrected.to_dict(),
                "uncorrected": self.latency_uncorrected.to_dict(),
            },
            "latency_clamped": self.latency_clamped,
            "histogram_corrected": self.histogram_corrected,
            "histogram_uncorrected": self.histogram_uncorrected,
            "send_lag_us": self.send_lag_us.to_dict(),
            "histogram_send_lag": self.histogram_send_lag,
            "timeseries_interval_s": self.timeseries_interval_s,
            "timeseries": [p.to_dict() for p in self.timeseries],
            "workers": [w.to_dict() for w in self.workers],
            "loadgen_cpu_us_per_req": self.loadgen_cpu_us_per_req,
            "max_busy_fraction": self.max_busy_fraction,
            "saturated": self.saturated,
            "release_timeouts": self.release_timeouts,
            "placement": self.placement,
            "loadgen_core": self.loadgen_core,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> LoadResult:
        """The result a document holds (as to_dict wrote it, or an older version's).

        Raises UnknownResultVersion for a ``schema_version`` this loadgen cannot
        read, and ResultFormatError when a key of the document's version is missing.
        """
        version = doc.get(VERSION_KEY)
        try:
            return cls._from_current(migrate(doc))
        except KeyError as exc:
            raise ResultFormatError(
                f"load result (schema_version {version}) lacks the key {exc.args[0]!r}: "
                "the document was truncated or edited; measure again"
            ) from None

    @classmethod
    def _from_current(cls, d: Mapping[str, Any]) -> LoadResult:
        return cls(
            partial=bool(d["partial"]),
            interrupted=bool(d["interrupted"]),
            partial_reason=d["partial_reason"],
            config=dict(d["config"]),
            target_address=d["target_address"],
            source_addresses=tuple(d["source_addresses"]),
            phases=Phases.from_dict(d["phases"]),
            connections=ConnectionCounts.from_dict(d["connections"]),
            requests=int(d["requests"]),
            requests_sent=int(d["requests_sent"]),
            requests_total=int(d["requests_total"]),
            warmup_requests=int(d["warmup_requests"]),
            drain_requests=int(d["drain_requests"]),
            unanswered_at_end=int(d["unanswered_at_end"]),
            reconnects=int(d["reconnects"]),
            reconnects_measured=int(d["reconnects_measured"]),
            reconnect_rate_per_s=d["reconnect_rate_per_s"],
            errors={k: int(v) for k, v in d["errors"].items()},
            errors_total=int(d["errors_total"]),
            errors_measured=int(d["errors_measured"]),
            error_samples=tuple(d["error_samples"]),
            measured_duration_s=float(d["measured_duration_s"]),
            throughput_rps=float(d["throughput_rps"]),
            requested_rate_rps=d["requested_rate_rps"],
            achieved_rate_rps=d["achieved_rate_rps"],
            achieved_rate_ratio=d["achieved_rate_ratio"],
            rate_shortfall=bool(d["rate_shortfall"]),
            latency_corrected=LatencySummary.from_dict(d["latency_us"]["corrected"]),
            latency_uncorrected=LatencySummary.from_dict(d["latency_us"]["uncorrected"]),
            latency_clamped=int(d["latency_clamped"]),
            histogram_corrected=d["histogram_corrected"],
            histogram_uncorrected=d["histogram_uncorrected"],
            send_lag_us=SendLagSummary.from_dict(d["send_lag_us"]),
            histogram_send_lag=d["histogram_send_lag"],
            timeseries_interval_s=int(d["timeseries_interval_s"]),
            timeseries=tuple(TimeseriesPoint.from_dict(p) for p in d["timeseries"]),
            workers=tuple(WorkerSummary.from_dict(w) for w in d["workers"]),
            loadgen_cpu_us_per_req=d["loadgen_cpu_us_per_req"],
            max_busy_fraction=float(d["max_busy_fraction"]),
            saturated=bool(d["saturated"]),
            release_timeouts=int(d["release_timeouts"]),
            placement=d["placement"],
            loadgen_core=d["loadgen_core"],
        )


def _v1_to_v2(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2: the keys version 1 gained late become explicit, with the value
    that meant "not measured then"; the config's old ``duration_s`` is ``measure_s``."""
    out = dict(doc)
    out.setdefault("release_timeouts", 0)
    out.setdefault("send_lag_us", NO_SEND_LAG.to_dict())
    out.setdefault("histogram_send_lag", None)
    out.setdefault("reconnects", 0)
    out.setdefault("reconnects_measured", 0)
    out.setdefault("reconnect_rate_per_s", None)
    out.setdefault("placement", None)
    if "phases" in doc:  # across hosts the connects were not timed
        out["phases"] = {**dict.fromkeys(PHASE_NAMES), **doc["phases"]}
    if "workers" in doc:
        out["workers"] = [{"release": None, "hold_s": None, **w} for w in doc["workers"]]
    config = doc.get("config")
    if isinstance(config, Mapping) and "duration_s" in config and "measure_s" not in config:
        renamed = {k: v for k, v in config.items() if k != "duration_s"}
        out["config"] = {**renamed, "measure_s": config["duration_s"]}
    out[VERSION_KEY] = 2
    return out


def _v2_to_v3(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Version 2 -> 3: the loop that ran, "python" (the only one before version 3)."""
    out = dict(doc)
    workers = doc.get("workers")
    out["loadgen_core"] = "python" if workers else None
    if workers is not None:
        out["workers"] = [{**w, "core": "python"} for w in workers]
    out[VERSION_KEY] = 3
    return out


def _v3_to_v4(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Version 3 -> 4: no loop polled for answers before version 4."""
    out = dict(doc)
    if doc.get("workers") is not None:
        out["workers"] = [{**w, "polled_s": 0.0} for w in doc["workers"]]
    out[VERSION_KEY] = 4
    return out


def _v4_to_v5(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Version 4 -> 5: the keys are the same; a version-4 open loop counted its spin as
    busy (polled_s 0.0), which stays as it was measured."""
    return {**doc, VERSION_KEY: 5}


# Version -> the step to the next version; migrate() applies them in turn.
MIGRATIONS: Final[dict[int, Callable[[Mapping[str, Any]], dict[str, Any]]]] = {
    1: _v1_to_v2,
    2: _v2_to_v3,
    3: _v3_to_v4,
    4: _v4_to_v5,
}


def migrate(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """The document at SCHEMA_VERSION; raises UnknownResultVersion if it cannot be."""
    version = doc.get(VERSION_KEY)
    known = f"1 to {SCHEMA_VERSION}"
    if isinstance(version, bool) or not isinstance(version, int):
        raise UnknownResultVersion(
            f"load result schema_version {version!r} is not a version loadgen wrote "
            f"(it reads {known}): the document is not a load result, or was edited"
        )
    if version > SCHEMA_VERSION:
        raise UnknownResultVersion(
            f"load result schema_version {version} is newer than this loadgen reads "
            f"({known}): it was written by a newer selectbench; read it with that version "
            "(or newer)"
        )
    if version != SCHEMA_VERSION and version not in MIGRATIONS:
        raise UnknownResultVersion(
            f"load result schema_version {version} is not a version loadgen wrote "
            f"(it reads {known}): the document was edited"
        )
    while version != SCHEMA_VERSION:
        doc = MIGRATIONS[version](doc)
        version = doc[VERSION_KEY]
    return doc


__all__ = [
    "RATE_SHORTFALL_RATIO",
    "SATURATED_BUSY_FRACTION",
    "SCHEMA_VERSION",
    "LoadResult",
    "migrate",
    "rate_shortfall",
]
