"""Tidy trial-table columns from what a trial measured, and why a trial is flagged.

Server columns are differences between the two window-edge reads (``Edge``),
so every server figure covers exactly the measured window; load columns come
from the load generator's typed result. The column names and dtypes are the
trial table's contract (``COMMON_COLUMNS``); a scenario may add its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bench.measure.placement import Edge
from bench.measure.quiet import MAX_STEAL_FRACTION
from bench.measure.trial import Trial
from loadgen import LoadResult
from servers import registry
from servers.stats import StatsSnapshot

# A trial whose window lost more than this share of the machine's CPU time to the
# hypervisor (steal_fraction) is flagged: a fault, not an outcome. Steal lowers the
# CPU time the kernel charges to the server and the client. It is the same bound the
# quiet-machine check applies before a run, declared there once; the analysis states
# it as RULES["steal"] (bench.analyse.rules imports it from here: measure cannot
# import analyse).
STEAL_FRACTION_MAX = MAX_STEAL_FRACTION

# Column name -> pandas dtype ("Int64" and "boolean" are pandas' nullable dtypes,
# so a failed trial leaves a measurement empty instead of inventing a zero).
COMMON_COLUMNS: dict[str, str] = {
    "run_id": "string",
    "scenario": "string",
    "backend": "string",
    "protocol": "string",
    "mode": "string",
    "idle_connections": "Int64",
    "active_connections": "Int64",
    "rate_rps_requested": "float64",
    "repetition": "Int64",
    "order_index": "Int64",
    # 0-based place of the trial in its repetition's seeded random order.
    "position_in_repetition": "Int64",
    "started_utc": "string",
    "status": "string",
    "failure_reason": "string",
    "flagged": "boolean",
    "flag_reasons": "string",
    "throughput_rps": "float64",
    "achieved_rate_ratio": "float64",
    "requests": "Int64",
    "errors": "Int64",
    "latency_p50_us": "float64",
    "latency_p90_us": "float64",
    "latency_p99_us": "float64",
    "latency_p999_us": "float64",
    "latency_max_us": "float64",
    "uncorrected_latency_p50_us": "float64",
    "uncorrected_latency_p99_us": "float64",
    # Requests the latency percentiles rest on (p99 of n samples is the n/100-th largest).
    "latency_samples": "Int64",
    "server_cpu_user_s": "float64",
    "server_cpu_system_s": "float64",
    "server_cpu_us_per_req": "float64",
    "server_wait_calls": "Int64",
    "server_wait_us_per_call": "float64",
    "server_wait_us_per_event": "float64",
    "server_events_per_call": "float64",
    "server_rss_bytes": "Int64",
    "server_num_fds": "Int64",
    "server_current_connections": "Int64",
    "server_rejected_fd_setsize": "Int64",
    "connections_requested": "Int64",
    "connections_established": "Int64",
    "connections_served": "Int64",
    "connections_rejected": "Int64",
    "connect_errors": "Int64",
    "client_observation": "string",
    "loadgen_saturated": "boolean",
    "loadgen_cpu_us_per_req": "float64",
    "raw_file": "string",
    # Window integrity: the server's connection count at the two edges.
    "server_connections_start": "Int64",
    "server_connections_end": "Int64",
    # Server CPU time (schedstat) over the window's wall time: below ~0.9 in
    # closed loop the server waited for the client.
    "server_busy_fraction": "float64",
    # The whole machine over the window (/proc/stat, every CPU): busy time (user,
    # nice, system, irq, softirq) per request answered. On loopback part of a
    # wake-up is paid on the sending CPU, so this is the cost per request with the
    # client included. Empty across hosts (the load ran elsewhere).
    "machine_cpu_us_per_req": "float64",
    # Stolen time over the window / (window wall time x CPUs online).
    "steal_fraction": "float64",
    # Time the server's threads were runnable but waiting for a CPU (schedstat).
    "server_run_delay_us": "float64",
    # Open loop: how late the load generator sent (actual minus intended send time).
    "send_lag_p50_us": "float64",
    "send_lag_p99_us": "float64",
    # Connections the server closed after a complete answer, reopened by the load
    # generator inside the window (a server's keep-alive policy, not an error).
    "reconnects": "Int64",
    # Wait-cost sampling: the seed of the server's random 1-in-8 sample and the
    # calibrated cost of one pair of thread-clock reads (subtracted per sample).
    "server_wait_sample_seed": "Int64",
    "server_wait_clock_overhead_ns": "Int64",
    # What the server's own start-up probe found (select: CPython's refusal).
    "server_fd_number_limit": "Int64",
    "server_select_probe_error": "string",
}


def _div(num: float | None, den: float | None, scale: float = 1.0) -> float | None:
    """num * scale / den, or None when either is missing or den is 0."""
    if num is None or not den:
        return None
    return num * scale / den


def base_row(trial: Trial, started_utc: str) -> dict[str, Any]:
    """The columns that say which trial a row is."""
    return {
        "scenario": trial.scenario,
        "backend": trial.backend,
        "protocol": trial.protocol,
        # fd-limit probes send one request per connection and wait: closed loop.
        "mode": "closed" if trial.mode == "probe" else trial.mode,
        "idle_connections": trial.idle_connections,
        "active_connections": trial.active_connections,
        "rate_rps_requested": trial.rate_rps_requested,
        "repetition": trial.repetition,
        "order_index": trial.order_index,
        "position_in_repetition": trial.position_in_repetition,
        "started_utc": started_utc,
        "connections_requested": trial.total_connections,
    }


def server_cpu_s(start: Edge, end: Edge) -> tuple[float | None, float | None, float | None]:
    """(user, system, total) CPU seconds of the server over the window.

    The total comes from schedstat (nanoseconds) when the kernel has it, else
    from psutil's user + system (10 ms ticks), else from the server's getrusage.
    """
    if start.process is not None and end.process is not None:
        user = end.process.cpu_user_s - start.process.cpu_user_s
        system = end.process.cpu_system_s - start.process.cpu_system_s
        total = user + system
        a, b = start.process.cpu_ns_schedstat, end.process.cpu_ns_schedstat
        if a is not None and b is not None:
            total = (b - a) / 1e9  # same quantity, nanosecond resolution
        return user, system, total
    if start.stats is not None and end.stats is not None:
        user = end.stats.cpu_user_s - start.stats.cpu_user_s
        system = end.stats.cpu_system_s - start.stats.cpu_system_s
        return user, system, user + system
    return None, None, None


def machine_window_columns(start: Edge, end: Edge, requests: int | None) -> dict[str, Any]:
    """The machine's busy time per request and its steal share, and the server's run delay,
    over the window; each None where its two reads are missing (or the CPUs changed)."""
    window_s = end.monotonic_s - start.monotonic_s
    a, b = start.machine, end.machine
    cpu_us = steal = None
    if a is not None and b is not None:
        cpu_us = _div((b.busy_s - a.busy_s) * 1e6, requests)
        if a.cpus == b.cpus:
            steal = _div(b.steal_s - a.steal_s, window_s * b.cpus)
    delay = None
    if start.process is not None and end.process is not None:
        x, y = start.process.run_delay_ns_schedstat, end.process.run_delay_ns_schedstat
        if x is not None and y is not None:
            delay = (y - x) / 1000.0
    return {
        "machine_cpu_us_per_req": cpu_us,
        "steal_fraction": steal,
        "server_run_delay_us": delay,
    }


def server_window_columns(start: Edge, end: Edge) -> dict[str, Any]:
    """Tidy columns from the server read at the window's two edges."""
    user_s, system_s, cpu_s = server_cpu_s(start, end)
    window_s = end.monotonic_s - start.monotonic_s
    requests = None
    if start.stats is not None and end.stats is not None:
        requests = start.stats.delta(end.stats).requests
    cols: dict[str, Any] = {
        **machine_window_columns(start, end, requests),
        "server_busy_fraction": _div(cpu_s, window_s),
        "server_cpu_user_s": user_s,
        "server_cpu_system_s": system_s,
        "server_rss_bytes": end.process.rss_bytes if end.process else None,
        "server_num_fds": end.process.num_fds if end.process else None,
    }
    if start.stats is None or end.stats is None:
        return cols
    d = start.stats.delta(end.stats)
    instrumented = end.stats.wait_instrumented
    # CPU time inside the wait call, not wall time: in a lightly loaded server
    # most of a blocking wait is sleep, which would hide the kernel's scan cost.
    # The servers read the CPU clock on a random sample of wait calls, so the
    # per-call and per-event costs come from the sampled calls alone, net of the
    # clock reads' own calibrated cost.
    net_ns = d.wait_cpu_ns_net
    sampled_cpu_us = net_ns / 1000.0 if net_ns is not None else None
    cols.update(
        {
            "server_cpu_us_per_req": _div(cpu_s, d.requests, 1e6),
            "server_wait_calls": d.wait_calls if instrumented else None,
            "server_wait_us_per_call": _div(sampled_cpu_us, d.wait_cpu_samples)
            if instrumented
            else None,
            "server_wait_us_per_event": _div(sampled_cpu_us, d.wait_cpu_sample_events)
            if instrumented
            else None,
            "server_events_per_call": _div(d.wait_events, d.wait_calls) if instrumented else None,
            "server_current_connections": end.stats.current_connections,
            "server_rejected_fd_setsize": end.stats.rejected_fd_setsize,
            # Every connection of a load trial is held open through the window, so the
            # ones the server still holds at its end are the ones it served.
            "connections_served": end.stats.current_connections,
            "connections_rejected": end.stats.rejected_fd_setsize + end.stats.accept_emfile,
            "server_connections_start": start.stats.current_connections,
            "server_connections_end": end.stats.current_connections,
        }
    )
    cols.update(server_fact_columns(end.stats))
    return cols


def server_fact_columns(stats: StatsSnapshot) -> dict[str, Any]:
    """What the server found about itself at start-up (sampling seed, clock cost, fd limit)."""
    return {
        "server_wait_sample_seed": stats.wait_cpu_sample_seed,
        "server_wait_clock_overhead_ns": stats.wait_cpu_clock_overhead_ns,
        "server_fd_number_limit": stats.fd_number_limit,
        "server_select_probe_error": stats.select_probe_error,
    }


def load_columns(trial: Trial, result: LoadResult) -> dict[str, Any]:
    """Tidy columns from the load generator's result."""
    corrected, uncorrected = result.latency_corrected, result.latency_uncorrected
    conns = result.connections
    errors = {k: v for k, v in result.errors.items() if v}
    return {
        "throughput_rps": result.throughput_rps,
        "achieved_rate_ratio": result.achieved_rate_ratio if trial.mode == "open" else None,
        "requests": result.requests,
        "errors": result.errors_total,
        "latency_p50_us": corrected.p50,
        "latency_p90_us": corrected.p90,
        "latency_p99_us": corrected.p99,
        "latency_p999_us": corrected.p99_9,
        "latency_max_us": corrected.max,
        "uncorrected_latency_p50_us": uncorrected.p50,
        "uncorrected_latency_p99_us": uncorrected.p99,
        "latency_samples": corrected.count,
        "connections_established": conns.idle_established + conns.active_established,
        "connect_errors": sum(conns.connect_errors.values()),
        "client_observation": json.dumps(errors, sort_keys=True) if errors else None,
        "loadgen_saturated": result.saturated,
        "loadgen_cpu_us_per_req": result.loadgen_cpu_us_per_req,
        "send_lag_p50_us": result.send_lag_us.p50,
        "send_lag_p99_us": result.send_lag_us.p99,
        "reconnects": result.reconnects_measured,
    }


def flag_reasons(trial: Trial, row: Mapping[str, Any], result: LoadResult) -> list[str]:
    """Why a finished load trial should not be trusted as a clean measurement."""
    reasons = []
    if row.get("loadgen_saturated"):
        reasons.append("loadgen_saturated")
    # Judged once, by the load generator (loadgen.result.rate_shortfall).
    if trial.mode == "open" and result.rate_shortfall:
        reasons.append(f"rate_shortfall({result.achieved_rate_ratio:.2f})")
    if (row.get("errors") or 0) > 0:
        reasons.append(f"errors({row['errors']})")
    established = row.get("connections_established")
    if established is not None and established < trial.total_connections:
        reasons.append(f"connections_short({established}/{trial.total_connections})")
    if result.partial:
        reasons.append("partial")
    if result.release_timeouts:
        # A worker closed its connections before bench read the window's end edge.
        reasons.append(f"release_timeout({result.release_timeouts} workers)")
    if registry.get(trial.backend).wait_instrumented and row.get("server_wait_calls") is None:
        reasons.append("no_server_stats")
    reasons += window_reasons(trial, row)
    return reasons


def window_reasons(trial: Trial, row: Mapping[str, Any]) -> list[str]:
    """Flags about the measured window itself: connections that came or went, CPU stolen.

    Whether the client set the pace (server busy fraction) or its lateness
    weighs on the latency (send lag) is judged by the analysis from the columns,
    under the rules of ``bench.analyse.rules``, so the thresholds live in one place.
    """
    reasons = []
    a, b = row.get("server_connections_start"), row.get("server_connections_end")
    # Keep-alive trials hold every connection through the window; churn opens and
    # closes one per request, so its count moves by design.
    if not trial.http_close and a is not None and b is not None and a != b:
        reasons.append(f"window_connections_changed({a}->{b})")
    steal = row.get("steal_fraction")
    if steal is not None and steal > STEAL_FRACTION_MAX:
        reasons.append(f"steal({steal:.2f})")
    return reasons


def trial_summary(row: Mapping[str, Any]) -> str:
    """One line for the progress display."""
    if row["status"] != "ok":
        return str(row.get("failure_reason"))
    parts = []
    if row.get("throughput_rps") is not None:
        parts.append(f"{row['throughput_rps']:.0f} req/s")
    if row.get("latency_p99_us") is not None:
        parts.append(f"p99 {row['latency_p99_us']:.0f} us")
    if row.get("server_cpu_us_per_req") is not None:
        parts.append(f"cpu {row['server_cpu_us_per_req']:.1f} us/req")
    if row.get("client_observation") and row.get("throughput_rps") is None:
        # A probe: what each offered connection saw is the result.
        parts.append(f"served {row.get('connections_served')} saw {row['client_observation']}")
    if row.get("flag_reasons"):
        parts.append(f"flagged: {row['flag_reasons']}")
    return ", ".join(parts)
