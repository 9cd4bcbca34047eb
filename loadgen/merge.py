"""Merge the workers' connect infos and reports into one LoadResult.

This is the parent's side only (the workers never import it); the result's
fields are documented in loadgen.result, the reports' in loadgen.report.
"""

from __future__ import annotations

from collections.abc import Iterable

from loadgen import histogram as hdr
from loadgen.accounting import new_connect_errors, new_request_errors, timeseries_interval_s
from loadgen.config import LoadConfig
from loadgen.report import ConnectInfo, CpuUsage, WorkerReport
from loadgen.result import SATURATED_BUSY_FRACTION, LoadResult, rate_shortfall
from loadgen.result_parts import (
    ConnectionCounts,
    LatencySummary,
    Phases,
    SendLagSummary,
    TimeseriesPoint,
    WorkerSummary,
)

NO_CPU = CpuUsage(user_s=0.0, system_s=0.0)


def _add(into: dict[str, int], counts: dict[str, int]) -> None:
    for kind, n in counts.items():
        into[kind] = into.get(kind, 0) + n


def merge_results(
    cfg: LoadConfig,
    *,
    target_address: str,
    sources: tuple[str, ...],
    connected: list[ConnectInfo],
    reports: list[WorkerReport],
    cpu: dict[int, CpuUsage],
    phases: Phases,
    measured_duration_s: float,
    partial: bool,
    interrupted: bool,
    partial_reason: str | None = None,
) -> LoadResult:
    """Merge per-worker connect infos and reports (and the parent's CPU reads) into one result."""
    connect_errors = new_connect_errors()
    for info in connected:
        _add(connect_errors, info.connect_errors)
    errors = new_request_errors()
    samples: list[str] = []
    for report in reports:
        _add(connect_errors, report.run_connect_errors)
        _add(errors, report.errors)
        samples.extend(report.error_samples)

    hist_c = hdr.merge(r.hist_corrected for r in reports)
    hist_u = hdr.merge(r.hist_uncorrected for r in reports)
    open_loop = cfg.mode == "open"
    hist_lag = hdr.merge(r.hist_send_lag for r in reports if r.hist_send_lag) if open_loop else None
    requests = sum(r.requests for r in reports)
    requests_sent = sum(r.requests_sent for r in reports)
    reconnects_measured = sum(r.reconnects_measured for r in reports)
    duration = measured_duration_s if measured_duration_s > 0 else 0.0

    achieved = requests_sent / duration if open_loop and duration else None
    ratio = achieved / cfg.rate_rps if achieved is not None and cfg.rate_rps else None
    ratio = round(ratio, 4) if ratio is not None else None

    workers = []
    total_cpu_s = 0.0  # the work: CPU time less the time spent polling for answers
    max_busy = 0.0
    by_index = {info.worker: info for info in connected}
    for report in sorted(reports, key=lambda r: r.worker):
        usage = cpu.get(report.worker, NO_CPU)
        # The poll is read by the worker and the CPU times by the parent at nearly the same
        # instants: never let it make the work negative.
        work_s = max(usage.user_s + usage.system_s - report.polled_s, 0.0)
        busy = work_s / duration if duration else 0.0
        total_cpu_s += work_s
        max_busy = max(max_busy, busy)
        info = by_index.get(report.worker)
        workers.append(
            WorkerSummary(
                worker=report.worker,
                pid=report.pid,
                cpu=report.cpu,
                idle_established=report.idle_established,
                active_established=info.active_established if info else 0,
                requests=report.requests,
                requests_total=report.requests_total,
                errors=sum(report.errors.values()),
                cpu_user_s=round(usage.user_s, 6),
                cpu_system_s=round(usage.system_s, 6),
                busy_fraction=round(busy, 4),
                rss_bytes_after_connect=report.rss_bytes_after_connect,
                connect_duration_s=info.connect_duration_s if info else None,
                release=report.release,
                hold_s=report.hold_s,
                core=report.core,
                polled_s=report.polled_s,
            )
        )
    cores = {r.core for r in reports}

    return LoadResult(
        partial=partial,
        interrupted=interrupted,
        partial_reason=partial_reason,
        config=cfg.as_dict(),
        target_address=target_address,
        source_addresses=tuple(sources),
        phases=phases,
        connections=ConnectionCounts(
            idle_requested=cfg.idle_connections,
            idle_established=sum(c.idle_established for c in connected),
            active_requested=cfg.active_connections,
            active_established=sum(c.active_established for c in connected),
            idle_alive_at_end=sum(r.idle_alive_at_end for r in reports),
            active_alive_at_end=sum(r.active_alive_at_end for r in reports),
            connect_duration_s=max((c.connect_duration_s for c in connected), default=None),
            connect_errors=connect_errors,
            precheck_connections=1,
            connections_opened=sum(r.connections_opened for r in reports),
            new_connection_per_request=cfg.new_connection_per_request,
        ),
        requests=requests,
        requests_sent=requests_sent,
        requests_total=sum(r.requests_total for r in reports),
        warmup_requests=sum(r.warmup_requests for r in reports),
        drain_requests=sum(r.drain_requests for r in reports),
        unanswered_at_end=sum(r.unanswered_at_end for r in reports),
        reconnects=sum(r.reconnects for r in reports),
        reconnects_measured=reconnects_measured,
        reconnect_rate_per_s=round(reconnects_measured / duration, 3) if duration else 0.0,
        errors=errors,
        errors_total=sum(errors.values()),
        errors_measured=sum(r.errors_measured for r in reports),
        error_samples=tuple(samples[:10]),
        measured_duration_s=round(duration, 6),
        throughput_rps=round(requests / duration, 3) if duration else 0.0,
        requested_rate_rps=cfg.rate_rps if open_loop else None,
        achieved_rate_rps=round(achieved, 3) if achieved is not None else None,
        achieved_rate_ratio=ratio,
        rate_shortfall=rate_shortfall(ratio),
        latency_corrected=LatencySummary(**hdr.summary_us(hist_c)),
        latency_uncorrected=LatencySummary(**hdr.summary_us(hist_u)),
        latency_clamped=sum(r.latency_clamped for r in reports),
        histogram_corrected=hdr.encode(hist_c),
        histogram_uncorrected=hdr.encode(hist_u),
        send_lag_us=SendLagSummary(**hdr.lag_summary_us(hist_lag)),
        histogram_send_lag=hdr.encode(hist_lag) if hist_lag is not None else None,
        timeseries_interval_s=timeseries_interval_s(cfg.measure_s),
        timeseries=merge_timeseries(cfg, reports),
        workers=tuple(workers),
        loadgen_cpu_us_per_req=round(total_cpu_s * 1e6 / requests, 3) if requests else None,
        max_busy_fraction=round(max_busy, 4),
        saturated=max_busy >= SATURATED_BUSY_FRACTION,
        release_timeouts=sum(1 for r in reports if r.release == "timeout"),
        placement=None,
        loadgen_core=(cores.pop() if len(cores) == 1 else "mixed") if cores else None,
    )


def merge_timeseries(
    cfg: LoadConfig, reports: Iterable[WorkerReport]
) -> tuple[TimeseriesPoint, ...]:
    """Per-interval points: counts summed, percentiles from the merged interval histograms."""
    step = timeseries_interval_s(cfg.measure_s)
    reports = list(reports)
    labels = sorted({k for r in reports for k in r.series})
    points = []
    for label in labels:
        parts = [r.series[label] for r in reports if label in r.series]
        merged = hdr.merge(p.hist for p in parts if p.hist)
        count = merged.get_total_count()
        points.append(
            TimeseriesPoint(
                t_s=label * step,
                requests=sum(p.requests for p in parts),
                errors=sum(p.errors for p in parts),
                p50_us=int(merged.get_value_at_percentile(50)) if count else None,
                p99_us=int(merged.get_value_at_percentile(99)) if count else None,
            )
        )
    return tuple(points)
