"""What a worker sends its parent, typed: the connect barrier, ticks, the final report.

Messages travel pickled over the worker's socketpair (loadgen.run), or back
from another host through Dask (bench's agents), as ``(kind, payload)``:
``("connected", ConnectInfo)``, ``("tick", Tick)``, ``("result", WorkerReport)``
and ``("error", worker, traceback_text)``. The parent merges the reports into
the result document (loadgen.merge); workers never import the merge.

Histograms are HdrHistograms encoded as loadgen.histogram.encode writes them
(values in microseconds), so the parent adds them without losing precision.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConnectInfo:
    """Sent once the worker's up-front connections are open (the start barrier)."""

    worker: int
    pid: int
    idle_requested: int
    idle_established: int
    active_requested: int
    # Keep-alive: connections open. Churn: the active slots (connections open per request).
    active_established: int
    connect_errors: dict[str, int]
    connect_duration_s: float
    rss_bytes_after_connect: int
    # A stop arrived while connecting.
    interrupted: bool


@dataclass(frozen=True)
class Tick:
    """One measured interval closed: what it completed, for the parent's progress display."""

    worker: int
    label: int
    requests: int
    errors: int


@dataclass(frozen=True)
class SeriesInterval:
    """One interval of the measured window, as one worker counted it."""

    requests: int
    errors: int
    # Latencies (corrected) completed in the interval; None when none completed.
    hist: str | None


@dataclass(frozen=True)
class WorkerReport:
    """The worker's whole run, sent after the hold; counts are over the whole run unless
    they say ``measured`` (the window) or name another phase."""

    worker: int
    pid: int
    cpu: int | None  # the CPU the worker was pinned to, None when not pinned
    idle_requested: int
    idle_established: int
    idle_alive_at_end: int
    active_requested: int
    active_alive_at_end: int
    requests: int  # answered inside the window
    requests_sent: int  # sent inside the window
    connections_opened: int
    reconnects: int
    reconnects_measured: int
    run_connect_errors: dict[str, int]  # connects that failed during the run
    warmup_requests: int
    drain_requests: int
    requests_total: int
    unanswered_at_end: int
    errors: dict[str, int]
    errors_measured: int
    error_samples: tuple[str, ...]
    latency_clamped: int
    hist_corrected: str
    hist_uncorrected: str  # closed loop: the corrected one (the two are the same)
    hist_send_lag: str | None  # open loop only
    series: dict[int, SeriesInterval]  # by interval index from the window's start
    phase_ns: dict[str, int]  # CLOCK_MONOTONIC instants the worker saw its phases begin
    rss_bytes_after_connect: int
    rss_bytes_at_end: int
    # How the hold after the window ended: "parent", "timeout", "stop" or "not_held".
    release: str
    hold_s: float
    interrupted: bool
    # The loop that sent and received: "c" (loadgen._cload) or "python".
    core: str = "python"
    # Inside the window: CPU time the loop spent polling for answers before blocking
    # (closed loop on the core, loadgen.core.DEFAULT_POLL_NS), waiting and not work.
    polled_s: float = 0.0


@dataclass(frozen=True)
class CpuUsage:
    """A worker's CPU time over the measured window, read by the parent (psutil)."""

    user_s: float
    system_s: float


__all__ = ["ConnectInfo", "CpuUsage", "SeriesInterval", "Tick", "WorkerReport"]
