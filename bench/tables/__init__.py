"""The trial table's shape, declared once for every stage: its columns, their dtypes,
the values of its categorical columns, and the columns that name a cell.

Outside the stages (like ``bench.metrics``, whose measured columns it lists) so
that the measuring code writes the table by it and the store reads a run folder
by it without the measuring code. A scenario's own columns are declared here
too (``SCENARIO_COLUMNS``); a scenario registered from outside the packages
declares its own through ``bench.measure.scenarios.register``, which forwards
them to ``declare_scenario_columns``. The micro table is ``bench.tables.micro``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from enum import StrEnum

from bench import metrics


class Mode(StrEnum):
    """How a trial loads its server. A StrEnum: it compares, prints and serialises as its
    value, so the tables and raw documents hold the same text as before it existed."""

    OPEN = "open"  # requests sent on a fixed schedule (rate_rps)
    CLOSED = "closed"  # the next request as soon as the previous answer arrived
    PROBE = "probe"  # fd-limit: one request per offered connection (recorded as closed)


class TrialStatus(StrEnum):
    """What became of a trial (the trial table's ``status``)."""

    OK = "ok"
    FAILED = "failed"


# The cell asked for this many connections (configuration, not a measurement).
CONNECTIONS_REQUESTED = "connections_requested"

# Column name -> pandas dtype, in the table's order: the columns that say which trial a
# row is and what became of it, and the measured ones from the metric catalogue
# (``bench.metrics``, which declares their units, directions and meanings).
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
    **metrics.dtypes(
        metrics.THROUGHPUT_RPS,
        metrics.ACHIEVED_RATE_RATIO,
        metrics.REQUESTS,
        metrics.ERRORS,
        metrics.LATENCY_P50_US,
        metrics.LATENCY_P90_US,
        metrics.LATENCY_P99_US,
        metrics.LATENCY_P999_US,
        metrics.LATENCY_MAX_US,
        metrics.UNCORRECTED_LATENCY_P50_US,
        metrics.UNCORRECTED_LATENCY_P99_US,
        metrics.LATENCY_SAMPLES,
        metrics.SERVER_CPU_USER_S,
        metrics.SERVER_CPU_SYSTEM_S,
        metrics.SERVER_CPU_US_PER_REQ,
        metrics.SERVER_WAIT_CALLS,
        metrics.SERVER_WAIT_US_PER_CALL,
        metrics.SERVER_WAIT_US_PER_EVENT,
        metrics.SERVER_EVENTS_PER_CALL,
        metrics.SERVER_RSS_BYTES,
        metrics.SERVER_NUM_FDS,
        metrics.SERVER_CURRENT_CONNECTIONS,
        metrics.SERVER_REJECTED_FD_SETSIZE,
    ),
    CONNECTIONS_REQUESTED: "Int64",
    **metrics.dtypes(
        metrics.CONNECTIONS_ESTABLISHED,
        metrics.CONNECTIONS_SERVED,
        metrics.CONNECTIONS_REJECTED,
        metrics.CONNECT_ERRORS,
        metrics.CLIENT_OBSERVATION,
        metrics.LOADGEN_SATURATED,
        metrics.LOADGEN_CORE,
        metrics.LOADGEN_CPU_US_PER_REQ,
    ),
    "raw_file": "string",
    **metrics.dtypes(
        metrics.SERVER_CONNECTIONS_START,
        metrics.SERVER_CONNECTIONS_END,
        metrics.SERVER_BUSY_FRACTION,
        metrics.MACHINE_CPU_US_PER_REQ,
        metrics.STEAL_FRACTION,
        metrics.SERVER_RUN_DELAY_US,
        metrics.FOREIGN_CPU_SHARE_SERVER,
        metrics.FOREIGN_CPU_SHARE_LOAD,
        metrics.SEND_LAG_P50_US,
        metrics.SEND_LAG_P99_US,
        metrics.RECONNECTS,
        metrics.SERVER_WAIT_SAMPLE_SEED,
        metrics.SERVER_WAIT_CLOCK_OVERHEAD_NS,
        metrics.SERVER_FD_NUMBER_LIMIT,
        metrics.SERVER_SELECT_PROBE_ERROR,
    ),
}

# The columns that identify one cell (a trial minus its repetition).
CELL_KEYS = (
    "scenario",
    "backend",
    "protocol",
    "mode",
    "idle_connections",
    "active_connections",
    "rate_rps_requested",
)

# idle-steps: its windows, one JSON list per trial (bench.measure.scenarios.idle_steps).
STEP_WINDOWS = "step_windows"
# Scenario name -> the columns it adds beyond the common ones, in the order a run
# measures the scenarios.
SCENARIO_COLUMNS: dict[str, dict[str, str]] = {
    "idle-steps": {STEP_WINDOWS: "string"},
    "churn": metrics.dtypes(metrics.SERVER_CPU_US_PER_CONN),
}


def utc_now_iso() -> str:
    """Now as the tables and run.json write a time (``started_utc``, phases, run times)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def declare_scenario_columns(scenario: str, columns: Mapping[str, str]) -> None:
    """Add (or replace) the columns a scenario adds to the trial table."""
    SCENARIO_COLUMNS[scenario] = dict(columns)
