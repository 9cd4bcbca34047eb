"""Tidy trial-table columns from what a trial measured, and why a trial is flagged.

Server columns are differences between the two window-edge reads (``Edge``),
so every server figure covers exactly the measured window; load columns come
from the load generator's typed result. The column names and dtypes are the
trial table's contract (``bench.tables.COMMON_COLUMNS``); a scenario may add its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bench import metrics
from bench.measure.machine.disturbance import disturbed_reason
from bench.measure.machine.quiet import MAX_STEAL_FRACTION
from bench.measure.placement import Edge
from bench.measure.trial import Trial
from bench.tables import CONNECTIONS_REQUESTED, Mode, TrialStatus
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
        "mode": Mode.CLOSED if trial.mode == Mode.PROBE else trial.mode,
        "idle_connections": trial.idle_connections,
        "active_connections": trial.active_connections,
        "rate_rps_requested": trial.rate_rps_requested,
        "repetition": trial.repetition,
        "order_index": trial.order_index,
        "position_in_repetition": trial.position_in_repetition,
        "started_utc": started_utc,
        CONNECTIONS_REQUESTED: trial.total_connections,
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


def machine_window_columns(
    start: Edge, end: Edge, requests: int | None, load_polled_s: float = 0.0
) -> dict[str, Any]:
    """The machine's busy time per request and its steal share, and the server's run delay,
    over the window; each None where its two reads are missing (or the CPUs changed).

    ``load_polled_s``: the load generator's time spent polling for answers on this machine
    (loadgen.core.DEFAULT_POLL_NS), busy in /proc/stat but waiting, not work: left out."""
    window_s = end.monotonic_s - start.monotonic_s
    a, b = start.machine, end.machine
    cpu_us = steal = None
    if a is not None and b is not None:
        busy_s = max(b.busy_s - a.busy_s - load_polled_s, 0.0)
        cpu_us = _div(busy_s * 1e6, requests)
        if a.cpus == b.cpus:
            steal = _div(b.steal_s - a.steal_s, window_s * b.cpus)
    delay = None
    if start.process is not None and end.process is not None:
        x, y = start.process.run_delay_ns_schedstat, end.process.run_delay_ns_schedstat
        if x is not None and y is not None:
            delay = (y - x) / 1000.0
    return {
        metrics.MACHINE_CPU_US_PER_REQ.name: cpu_us,
        metrics.STEAL_FRACTION.name: steal,
        metrics.SERVER_RUN_DELAY_US.name: delay,
    }


def server_window_columns(start: Edge, end: Edge, load_polled_s: float = 0.0) -> dict[str, Any]:
    """Tidy columns from the server read at the window's two edges (``load_polled_s``: as
    for ``machine_window_columns``)."""
    user_s, system_s, cpu_s = server_cpu_s(start, end)
    window_s = end.monotonic_s - start.monotonic_s
    requests = None
    if start.stats is not None and end.stats is not None:
        requests = start.stats.delta(end.stats).requests
    cols: dict[str, Any] = {
        **machine_window_columns(start, end, requests, load_polled_s),
        metrics.SERVER_BUSY_FRACTION.name: _div(cpu_s, window_s),
        metrics.SERVER_CPU_USER_S.name: user_s,
        metrics.SERVER_CPU_SYSTEM_S.name: system_s,
        metrics.SERVER_RSS_BYTES.name: end.process.rss_bytes if end.process else None,
        metrics.SERVER_NUM_FDS.name: end.process.num_fds if end.process else None,
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
            metrics.SERVER_CPU_US_PER_REQ.name: _div(cpu_s, d.requests, 1e6),
            metrics.SERVER_WAIT_CALLS.name: d.wait_calls if instrumented else None,
            metrics.SERVER_WAIT_US_PER_CALL.name: _div(sampled_cpu_us, d.wait_cpu_samples)
            if instrumented
            else None,
            metrics.SERVER_WAIT_US_PER_EVENT.name: _div(sampled_cpu_us, d.wait_cpu_sample_events)
            if instrumented
            else None,
            metrics.SERVER_EVENTS_PER_CALL.name: _div(d.wait_events, d.wait_calls)
            if instrumented
            else None,
            metrics.SERVER_CURRENT_CONNECTIONS.name: end.stats.current_connections,
            metrics.SERVER_REJECTED_FD_SETSIZE.name: end.stats.rejected_fd_setsize,
            # Every connection of a load trial is held open through the window, so the
            # ones the server still holds at its end are the ones it served.
            metrics.CONNECTIONS_SERVED.name: end.stats.current_connections,
            metrics.CONNECTIONS_REJECTED.name: end.stats.rejected_fd_setsize
            + end.stats.accept_emfile,
            metrics.SERVER_CONNECTIONS_START.name: start.stats.current_connections,
            metrics.SERVER_CONNECTIONS_END.name: end.stats.current_connections,
        }
    )
    cols.update(server_fact_columns(end.stats))
    return cols


def server_fact_columns(stats: StatsSnapshot) -> dict[str, Any]:
    """What the server found about itself at start-up (sampling seed, clock cost, fd limit)."""
    return {
        metrics.SERVER_WAIT_SAMPLE_SEED.name: stats.wait_cpu_sample_seed,
        metrics.SERVER_WAIT_CLOCK_OVERHEAD_NS.name: stats.wait_cpu_clock_overhead_ns,
        metrics.SERVER_FD_NUMBER_LIMIT.name: stats.fd_number_limit,
        metrics.SERVER_SELECT_PROBE_ERROR.name: stats.select_probe_error,
    }


def load_columns(trial: Trial, result: LoadResult) -> dict[str, Any]:
    """Tidy columns from the load generator's result."""
    corrected, uncorrected = result.latency_corrected, result.latency_uncorrected
    conns = result.connections
    errors = {k: v for k, v in result.errors.items() if v}
    return {
        metrics.THROUGHPUT_RPS.name: result.throughput_rps,
        metrics.ACHIEVED_RATE_RATIO.name: result.achieved_rate_ratio
        if trial.mode == Mode.OPEN
        else None,
        metrics.REQUESTS.name: result.requests,
        metrics.ERRORS.name: result.errors_total,
        metrics.LATENCY_P50_US.name: corrected.p50,
        metrics.LATENCY_P90_US.name: corrected.p90,
        metrics.LATENCY_P99_US.name: corrected.p99,
        metrics.LATENCY_P999_US.name: corrected.p99_9,
        metrics.LATENCY_MAX_US.name: corrected.max,
        metrics.UNCORRECTED_LATENCY_P50_US.name: uncorrected.p50,
        metrics.UNCORRECTED_LATENCY_P99_US.name: uncorrected.p99,
        metrics.LATENCY_SAMPLES.name: corrected.count,
        metrics.CONNECTIONS_ESTABLISHED.name: conns.idle_established + conns.active_established,
        metrics.CONNECT_ERRORS.name: sum(conns.connect_errors.values()),
        metrics.CLIENT_OBSERVATION.name: json.dumps(errors, sort_keys=True) if errors else None,
        metrics.LOADGEN_SATURATED.name: result.saturated,
        metrics.LOADGEN_CORE.name: result.loadgen_core,
        metrics.LOADGEN_CPU_US_PER_REQ.name: result.loadgen_cpu_us_per_req,
        metrics.SEND_LAG_P50_US.name: result.send_lag_us.p50,
        metrics.SEND_LAG_P99_US.name: result.send_lag_us.p99,
        metrics.RECONNECTS.name: result.reconnects_measured,
    }


# The flag reason of a load generator that could not keep up (its workers busy).
LOADGEN_SATURATED = "loadgen_saturated"


def flag_reasons(trial: Trial, row: Mapping[str, Any], result: LoadResult) -> list[str]:
    """Why a finished load trial should not be trusted as a clean measurement."""
    reasons = []
    if row.get(metrics.LOADGEN_SATURATED.name):
        reasons.append(LOADGEN_SATURATED)
    # Judged once, by the load generator (loadgen.result.rate_shortfall).
    if trial.mode == Mode.OPEN and result.rate_shortfall:
        reasons.append(f"rate_shortfall({result.achieved_rate_ratio:.2f})")
    if (row.get(metrics.ERRORS.name) or 0) > 0:
        reasons.append(f"errors({row[metrics.ERRORS.name]})")
    established = row.get(metrics.CONNECTIONS_ESTABLISHED.name)
    if established is not None and established < trial.total_connections:
        reasons.append(f"connections_short({established}/{trial.total_connections})")
    if result.partial:
        reasons.append("partial")
    if result.release_timeouts:
        # A worker closed its connections before bench read the window's end edge.
        reasons.append(f"release_timeout({result.release_timeouts} workers)")
    if (
        registry.get(trial.backend).wait_instrumented
        and row.get(metrics.SERVER_WAIT_CALLS.name) is None
    ):
        reasons.append("no_server_stats")
    reasons += window_reasons(trial, row)
    return reasons


def window_reasons(trial: Trial, row: Mapping[str, Any]) -> list[str]:
    """Flags about the measured window itself: connections that came or went, CPU stolen
    or taken by other processes.

    Whether the client set the pace (server busy fraction) or its lateness
    weighs on the latency (send lag) is judged by the analysis from the columns,
    under the rules of ``bench.analyse.rules``, so the thresholds live in one place.
    """
    reasons = []
    a, b = (
        row.get(metrics.SERVER_CONNECTIONS_START.name),
        row.get(metrics.SERVER_CONNECTIONS_END.name),
    )
    # Keep-alive trials hold every connection through the window; churn opens and
    # closes one per request, so its count moves by design.
    if not trial.http_close and a is not None and b is not None and a != b:
        reasons.append(f"window_connections_changed({a}->{b})")
    steal = row.get(metrics.STEAL_FRACTION.name)
    if steal is not None and steal > STEAL_FRACTION_MAX:
        reasons.append(f"steal({steal:.2f})")
    disturbed = disturbed_reason(row)
    if disturbed is not None:
        reasons.append(disturbed)
    return reasons


def trial_summary(row: Mapping[str, Any]) -> str:
    """One line for the progress display."""
    if row["status"] != TrialStatus.OK:
        return str(row.get("failure_reason"))
    parts = []
    if row.get(metrics.THROUGHPUT_RPS.name) is not None:
        parts.append(f"{row[metrics.THROUGHPUT_RPS.name]:.0f} req/s")
    if row.get(metrics.LATENCY_P99_US.name) is not None:
        parts.append(f"p99 {row[metrics.LATENCY_P99_US.name]:.0f} us")
    if row.get(metrics.SERVER_CPU_US_PER_REQ.name) is not None:
        parts.append(f"cpu {row[metrics.SERVER_CPU_US_PER_REQ.name]:.1f} us/req")
    if row.get(metrics.CLIENT_OBSERVATION.name) and row.get(metrics.THROUGHPUT_RPS.name) is None:
        # A probe: what each offered connection saw is the result.
        served, saw = row.get(metrics.CONNECTIONS_SERVED.name), row[metrics.CLIENT_OBSERVATION.name]
        parts.append(f"served {served} saw {saw}")
    if row.get("flag_reasons"):
        parts.append(f"flagged: {row['flag_reasons']}")
    return ", ".join(parts)
