"""Merge the workers' connect infos and reports into the result document.

The document's schema is in loadgen.result's docstring; this is the parent's
side only (the workers never import it).
"""

from __future__ import annotations

from typing import Any

from loadgen import histogram as hdr
from loadgen.accounting import new_connect_errors, new_request_errors, timeseries_interval_s
from loadgen.config import LoadConfig
from loadgen.result import RATE_SHORTFALL_RATIO, SATURATED_BUSY_FRACTION, SCHEMA_VERSION


def _sum(reports: list[dict[str, Any]], key: str) -> int:
    return sum(int(r.get(key, 0)) for r in reports)


def merge_results(
    cfg: LoadConfig,
    *,
    target_address: str,
    sources: tuple[str, ...],
    connected: list[dict[str, Any]],
    reports: list[dict[str, Any]],
    cpu: dict[int, dict[str, float]],
    phases: dict[str, float | None],
    measured_duration_s: float,
    partial: bool,
    interrupted: bool,
    partial_reason: str | None = None,
) -> dict[str, Any]:
    """Merge per-worker connect infos and reports into the result document."""
    connect_errors = new_connect_errors()
    for info in connected:
        for kind, n in info["connect_errors"].items():
            connect_errors[kind] = connect_errors.get(kind, 0) + n
    errors = new_request_errors()
    samples: list[str] = []
    for report in reports:
        for kind, n in report.get("run_connect_errors", {}).items():
            connect_errors[kind] = connect_errors.get(kind, 0) + n
        for kind, n in report["errors"].items():
            errors[kind] = errors.get(kind, 0) + n
        samples.extend(report["error_samples"])

    hist_c = hdr.merge(r["hist_corrected"] for r in reports)
    hist_u = hdr.merge(r["hist_uncorrected"] for r in reports)
    open_loop = cfg.mode == "open"
    hist_lag = hdr.merge(r["hist_send_lag"] for r in reports) if open_loop else None
    requests = _sum(reports, "requests")
    requests_sent = _sum(reports, "requests_sent")
    duration = measured_duration_s if measured_duration_s > 0 else 0.0

    achieved = requests_sent / duration if open_loop and duration else None
    ratio = achieved / cfg.rate_rps if achieved is not None and cfg.rate_rps else None

    workers = []
    total_cpu_s = 0.0
    max_busy = 0.0
    by_index = {info["worker"]: info for info in connected}
    for report in sorted(reports, key=lambda r: r["worker"]):
        usage = cpu.get(report["worker"], {})
        user = usage.get("user_s", 0.0)
        system = usage.get("system_s", 0.0)
        busy = (user + system) / duration if duration else 0.0
        total_cpu_s += user + system
        max_busy = max(max_busy, busy)
        info = by_index.get(report["worker"], {})
        workers.append(
            {
                "worker": report["worker"],
                "pid": report["pid"],
                "cpu": report["cpu"],
                "idle_established": report["idle_established"],
                "active_established": info.get("active_established", 0),
                "requests": report["requests"],
                "requests_total": report["requests_total"],
                "errors": sum(report["errors"].values()),
                "cpu_user_s": round(user, 6),
                "cpu_system_s": round(system, 6),
                "busy_fraction": round(busy, 4),
                "rss_bytes_after_connect": report["rss_bytes_after_connect"],
                "connect_duration_s": info.get("connect_duration_s"),
                "release": report["release"],
                "hold_s": report["hold_s"],
            }
        )

    return {
        "schema_version": SCHEMA_VERSION,
        "partial": partial,
        "interrupted": interrupted,
        "partial_reason": partial_reason,
        "config": cfg.as_dict(),
        "target_address": target_address,
        "source_addresses": list(sources),
        "phases": phases,
        "connections": {
            "idle_requested": cfg.idle_connections,
            "idle_established": _sum(connected, "idle_established"),
            "active_requested": cfg.active_connections,
            "active_established": _sum(connected, "active_established"),
            "idle_alive_at_end": _sum(reports, "idle_alive_at_end"),
            "active_alive_at_end": _sum(reports, "active_alive_at_end"),
            "connect_duration_s": max((c["connect_duration_s"] for c in connected), default=None),
            "connect_errors": connect_errors,
            "precheck_connections": 1,
            "connections_opened": _sum(reports, "connections_opened"),
            "new_connection_per_request": cfg.new_connection_per_request,
        },
        "requests": requests,
        "requests_sent": requests_sent,
        "requests_total": _sum(reports, "requests_total"),
        "warmup_requests": _sum(reports, "warmup_requests"),
        "drain_requests": _sum(reports, "drain_requests"),
        "unanswered_at_end": _sum(reports, "unanswered_at_end"),
        "reconnects": _sum(reports, "reconnects"),
        "reconnects_measured": _sum(reports, "reconnects_measured"),
        "reconnect_rate_per_s": (
            round(_sum(reports, "reconnects_measured") / duration, 3) if duration else 0.0
        ),
        "errors": errors,
        "errors_total": sum(errors.values()),
        "errors_measured": _sum(reports, "errors_measured"),
        "error_samples": samples[:10],
        "measured_duration_s": round(duration, 6),
        "throughput_rps": round(requests / duration, 3) if duration else 0.0,
        "requested_rate_rps": cfg.rate_rps if open_loop else None,
        "achieved_rate_rps": round(achieved, 3) if achieved is not None else None,
        "achieved_rate_ratio": round(ratio, 4) if ratio is not None else None,
        "rate_shortfall": bool(ratio is not None and ratio < RATE_SHORTFALL_RATIO),
        "latency_us": {"corrected": hdr.summary_us(hist_c), "uncorrected": hdr.summary_us(hist_u)},
        "latency_clamped": _sum(reports, "latency_clamped"),
        "histogram_corrected": hdr.encode(hist_c),
        "histogram_uncorrected": hdr.encode(hist_u),
        "send_lag_us": hdr.lag_summary_us(hist_lag),
        "histogram_send_lag": hdr.encode(hist_lag) if hist_lag is not None else None,
        "timeseries_interval_s": timeseries_interval_s(cfg.measure_s),
        "timeseries": merge_timeseries(cfg, reports),
        "workers": workers,
        "loadgen_cpu_us_per_req": round(total_cpu_s * 1e6 / requests, 3) if requests else None,
        "max_busy_fraction": round(max_busy, 4),
        "saturated": max_busy >= SATURATED_BUSY_FRACTION,
        "release_timeouts": sum(1 for r in reports if r["release"] == "timeout"),
    }


def merge_timeseries(cfg: LoadConfig, reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-interval points: counts summed, percentiles from the merged interval histograms."""
    step = timeseries_interval_s(cfg.measure_s)
    labels = sorted({int(k) for r in reports for k in r["series"]})
    points = []
    for label in labels:
        parts = [r["series"][str(label)] for r in reports if str(label) in r["series"]]
        merged = hdr.merge(p["hist"] for p in parts if p["hist"])
        count = merged.get_total_count()
        points.append(
            {
                "t_s": label * step,
                "requests": sum(p["requests"] for p in parts),
                "errors": sum(p["errors"] for p in parts),
                "p50_us": int(merged.get_value_at_percentile(50)) if count else None,
                "p99_us": int(merged.get_value_at_percentile(99)) if count else None,
            }
        )
    return points
