"""The result document of one load run, and its typed reader ``read_result``.

loadgen.run returns the document (a JSON-serialisable dict, stored as is by
bench); loadgen.merge builds it from the workers' reports. Readers go
through ``read_result(doc) -> LoadResult``, which checks ``schema_version``.

Schema (``schema_version`` 1). Times are epoch seconds unless named ``_ns``/
``_s``; latencies are microseconds. Everything is JSON-serialisable.

- ``schema_version``: int, 1.
- ``partial``: bool. True when the run was interrupted (SIGINT / stop) or a
  worker failed; counts then cover only what happened before the stop.
- ``interrupted``: bool, SIGINT/stop was the reason; ``partial_reason``: str
  or None ("interrupted by SIGINT", or which workers did not report).
- ``config``: the LoadConfig as a dict (``measure_s`` is the measured window;
  documents written before the rename have ``duration_s``); ``target_address``: resolved address;
  ``source_addresses``: list of bound source addresses ([] = kernel default).
- ``phases``: epoch-second timestamps ``connect_start``, ``connect_end``,
  ``warmup_start``, ``measure_start``, ``measure_end``, ``drain_end`` (None
  for a phase that never started).
- ``connections``: ``idle_requested``, ``idle_established``,
  ``active_requested``, ``active_established``, ``idle_alive_at_end``,
  ``active_alive_at_end``, ``connect_duration_s`` (slowest worker),
  ``connect_errors`` {ECONNREFUSED, EMFILE, EADDRNOTAVAIL, ETIMEDOUT,
  ECONNRESET, other}, ``precheck_connections`` (1: the parent's probe
  connection, which the server also counts as accepted),
  ``connections_opened`` (TCP handshakes completed by the workers over the
  whole run: idle + active, plus one per request in churn mode; the
  server's ``accepted`` delta equals this + precheck_connections in a run
  without connect errors), ``new_connection_per_request`` (bool). In churn
  mode ``active_established`` counts the active slots and
  ``connect_errors`` includes connects that failed during the run.
- ``requests``: responses completed inside the measured window.
- ``requests_sent``: requests sent inside the measured window.
- ``requests_total``: responses completed over the whole run (warm-up +
  measured + drain). The server's request counter, read after the
  connections closed, equals this exactly for a run without errors.
- ``warmup_requests``, ``drain_requests``, ``unanswered_at_end``.
- ``reconnects``: keep-alive connections the server closed cleanly (after a
  complete answer: ``Connection: close`` in it, or EOF before the next) that
  were replaced at once by a new connection for the same slot, over the whole
  run; ``reconnects_measured``: those inside the window;
  ``reconnect_rate_per_s`` = reconnects_measured / measured_duration_s. They
  are the server's policy, not errors; ``connections_opened`` includes them.
  A reconnect that fails counts as an ``unexpected_close`` error (and in
  ``connect_errors``). Always 0 in churn mode.
- ``errors``: {bad_response, unexpected_close, timeout, send_error} over the
  whole run; ``errors_total``; ``errors_measured`` (inside the window);
  ``error_samples``: a few messages.
- ``measured_duration_s``, ``throughput_rps`` (= requests / duration).
- ``requested_rate_rps`` (None in closed loop), ``achieved_rate_rps``
  (= requests_sent / duration in open loop, None in closed loop),
  ``achieved_rate_ratio`` (achieved / requested, None in closed loop),
  ``rate_shortfall`` (open loop: achieved < 95% of requested).
- ``latency_us``: {``corrected``: {p50, p90, p99, p99_9, max, mean, count},
  ``uncorrected``: {...}}. Corrected latency runs from the intended send time
  (open loop, coordinated omission corrected as in wrk2); uncorrected from the
  actual send. In closed loop the two are identical. With
  new_connection_per_request every request has its own TCP connection and
  its latency INCLUDES the connect: it runs from the start of the connect
  (closed loop, and uncorrected in open loop) or from the intended send
  time (open loop, corrected).
- ``send_lag_us``: {p50, p99, max, count}, open loop only (None values and
  count 0 in closed loop): per request sent inside the window, the actual
  send time minus the intended one, in microseconds (0 = on time, within
  1 us). It is the client's own lateness, which the corrected latency
  includes; when it is a material part of the corrected p99, the load
  generator, not the server, shaped the tail. In churn mode the "send" is the
  start of the request's connect. ``histogram_send_lag``: its HdrHistogram,
  encoded as the latency ones (None in closed loop).
- ``latency_clamped``: values outside 1 us..60 s, clamped into the range.
- ``histogram_corrected`` / ``histogram_uncorrected``: HdrHistogram encoded
  (base64 compressed, values in us; ``hdrh.histogram.HdrHistogram.decode``).
- ``timeseries_interval_s`` and ``timeseries``: [{t_s, requests, errors,
  p50_us, p99_us}], t_s from the start of the measured window.
- ``workers``: [{worker, pid, cpu, idle_established, active_established,
  requests, requests_total, errors, cpu_user_s, cpu_system_s, busy_fraction,
  rss_bytes_after_connect, connect_duration_s, release, hold_s}].
  ``release`` says how the worker's hold after the window ended: "parent"
  (the release, sent once on_measure_end returned), "timeout"
  (LoadConfig.release_timeout_s passed first: it closed its connections
  while the parent may still have been reading the server), "stop", or
  "not_held" (the run never started); ``hold_s`` how long it held.
- ``loadgen_cpu_us_per_req``: all workers' CPU (user+system) in the window
  per measured request.
- ``saturated``: any worker busy (CPU time / wall time) >= 90% of the window:
  the load generator, not the server, may have been the bottleneck.
- ``max_busy_fraction``.
- ``release_timeouts``: workers whose hold ended by timeout, not by the
  release (0 in a sound run).

Keys added to version 1 after it was first written (documents without them
are still version 1; read_result gives them the default in brackets):
``release_timeouts`` [0], ``workers[].release``/``hold_s``, ``send_lag_us``
[no values, count 0], ``histogram_send_lag`` [None], ``reconnects`` and
``reconnects_measured`` [0], ``reconnect_rate_per_s`` [None].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loadgen.errors import ResultFormatError, UnknownResultVersion

SCHEMA_VERSION = 1
KNOWN_VERSIONS = (1,)
SATURATED_BUSY_FRACTION = 0.90
RATE_SHORTFALL_RATIO = 0.95


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


@dataclass(frozen=True)
class SendLagSummary:
    """Open loop: actual minus intended send time, microseconds (None when not measured)."""

    p50: int | None
    p99: int | None
    max: int | None
    count: int


NO_SEND_LAG = SendLagSummary(p50=None, p99=None, max=None, count=0)


@dataclass(frozen=True)
class ConnectionCounts:
    """The ``connections`` block of the document."""

    idle_requested: int
    idle_established: int
    active_requested: int
    active_established: int
    idle_alive_at_end: int
    active_alive_at_end: int
    connect_duration_s: float | None
    connect_errors: dict[str, int]
    precheck_connections: int
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


@dataclass(frozen=True)
class TimeseriesPoint:
    """One interval of the measured window (``t_s`` from its start)."""

    t_s: int
    requests: int
    errors: int
    p50_us: int | None
    p99_us: int | None


@dataclass(frozen=True)
class LoadResult:
    """The result document, typed. ``doc`` is the raw mapping it was read from."""

    schema_version: int
    partial: bool
    partial_reason: str | None
    interrupted: bool
    config: dict[str, Any]
    target_address: str
    requests: int
    requests_sent: int
    requests_total: int
    warmup_requests: int
    drain_requests: int
    unanswered_at_end: int
    reconnects: int
    reconnects_measured: int
    reconnect_rate_per_s: float | None
    errors: dict[str, int]
    errors_total: int
    errors_measured: int
    error_samples: tuple[str, ...]
    measured_duration_s: float
    throughput_rps: float
    requested_rate_rps: float | None
    achieved_rate_rps: float | None
    achieved_rate_ratio: float | None
    rate_shortfall: bool
    latency_corrected: LatencySummary
    latency_uncorrected: LatencySummary
    latency_clamped: int
    histogram_corrected: str | None
    histogram_uncorrected: str | None
    send_lag_us: SendLagSummary
    histogram_send_lag: str | None
    connections: ConnectionCounts
    timeseries_interval_s: int
    timeseries: tuple[TimeseriesPoint, ...]
    workers: tuple[dict[str, Any], ...]
    loadgen_cpu_us_per_req: float | None
    saturated: bool
    max_busy_fraction: float
    release_timeouts: int
    doc: Mapping[str, Any]


def _latency(block: Mapping[str, Any]) -> LatencySummary:
    return LatencySummary(
        p50=block["p50"],
        p90=block["p90"],
        p99=block["p99"],
        p99_9=block["p99_9"],
        max=block["max"],
        mean=block["mean"],
        count=int(block["count"]),
    )


def _send_lag(block: Mapping[str, Any] | None) -> SendLagSummary:
    if block is None:
        return NO_SEND_LAG
    return SendLagSummary(
        p50=block["p50"], p99=block["p99"], max=block["max"], count=int(block["count"])
    )


def _connections(block: Mapping[str, Any]) -> ConnectionCounts:
    return ConnectionCounts(
        idle_requested=int(block["idle_requested"]),
        idle_established=int(block["idle_established"]),
        active_requested=int(block["active_requested"]),
        active_established=int(block["active_established"]),
        idle_alive_at_end=int(block["idle_alive_at_end"]),
        active_alive_at_end=int(block["active_alive_at_end"]),
        connect_duration_s=block["connect_duration_s"],
        connect_errors={k: int(v) for k, v in block["connect_errors"].items()},
        precheck_connections=int(block["precheck_connections"]),
        connections_opened=int(block["connections_opened"]),
        new_connection_per_request=bool(block["new_connection_per_request"]),
    )


def read_result(doc: Mapping[str, Any]) -> LoadResult:
    """The typed view of a result document (as returned by run_load or read from JSON).

    Raises UnknownResultVersion for a ``schema_version`` this reader does not
    know, and ResultFormatError when a key of that version is missing.
    """
    version = doc.get("schema_version")
    if version not in KNOWN_VERSIONS:
        raise UnknownResultVersion(
            f"load result schema_version {version!r} is not one this loadgen reads "
            f"({', '.join(map(str, KNOWN_VERSIONS))}): read it with the loadgen that wrote it"
        )
    try:
        return LoadResult(
            schema_version=int(version),
            partial=bool(doc["partial"]),
            partial_reason=doc["partial_reason"],
            interrupted=bool(doc["interrupted"]),
            config=dict(doc["config"]),
            target_address=doc["target_address"],
            requests=int(doc["requests"]),
            requests_sent=int(doc["requests_sent"]),
            requests_total=int(doc["requests_total"]),
            warmup_requests=int(doc["warmup_requests"]),
            drain_requests=int(doc["drain_requests"]),
            unanswered_at_end=int(doc["unanswered_at_end"]),
            reconnects=int(doc.get("reconnects", 0)),
            reconnects_measured=int(doc.get("reconnects_measured", 0)),
            reconnect_rate_per_s=doc.get("reconnect_rate_per_s"),
            errors={k: int(v) for k, v in doc["errors"].items()},
            errors_total=int(doc["errors_total"]),
            errors_measured=int(doc["errors_measured"]),
            error_samples=tuple(doc["error_samples"]),
            measured_duration_s=float(doc["measured_duration_s"]),
            throughput_rps=float(doc["throughput_rps"]),
            requested_rate_rps=doc["requested_rate_rps"],
            achieved_rate_rps=doc["achieved_rate_rps"],
            achieved_rate_ratio=doc["achieved_rate_ratio"],
            rate_shortfall=bool(doc["rate_shortfall"]),
            latency_corrected=_latency(doc["latency_us"]["corrected"]),
            latency_uncorrected=_latency(doc["latency_us"]["uncorrected"]),
            latency_clamped=int(doc["latency_clamped"]),
            histogram_corrected=doc["histogram_corrected"],
            histogram_uncorrected=doc["histogram_uncorrected"],
            send_lag_us=_send_lag(doc.get("send_lag_us")),
            histogram_send_lag=doc.get("histogram_send_lag"),
            connections=_connections(doc["connections"]),
            timeseries_interval_s=int(doc["timeseries_interval_s"]),
            timeseries=tuple(TimeseriesPoint(**point) for point in doc["timeseries"]),
            workers=tuple(dict(w) for w in doc["workers"]),
            loadgen_cpu_us_per_req=doc["loadgen_cpu_us_per_req"],
            saturated=bool(doc["saturated"]),
            max_busy_fraction=float(doc["max_busy_fraction"]),
            release_timeouts=int(doc.get("release_timeouts", 0)),
            doc=doc,
        )
    except KeyError as exc:
        raise ResultFormatError(
            f"load result (schema_version {version}) lacks the key {exc.args[0]!r}: "
            "the document was truncated or edited"
        ) from None


__all__ = [
    "SCHEMA_VERSION",
    "ConnectionCounts",
    "LatencySummary",
    "LoadResult",
    "SendLagSummary",
    "TimeseriesPoint",
    "read_result",
]
