"""The on-disk contract of a run folder: names, columns, units and the schema version.

Everything that writes a run (the runner) and everything that reads one (results,
analysis, charts, verdict, report, compare, notebooks) imports its names from here,
so that the two halves cannot drift apart. Change a column only together with
``SCHEMA_VERSION``; ``bench.store.results.load`` refuses versions it does not know.

Run folder ``results/<YYYYmmddTHHMMSSZ>_<6 hex>/`` (names sort by time, like
pytest-benchmark's storage and asv's results):

``run.json``
    ``{schema_version: 1, run_id, created_utc, finished_utc, status:
    "running"|"complete"|"partial", preset, config (the frozen bench config as a
    dict), machine {cpu_model, cores, cpus_allowed, kernel, python, packages
    {name: version}, rlimit_nofile, ephemeral_port_range, somaxconn,
    loadavg_start, governor}, git {commit, dirty}, cells_total, cells_done,
    duration_s, warnings [str]}``. Timestamps are ISO 8601 UTC strings.

``trials.csv`` and ``trials.parquet``
    One row per trial: one server process measured at one cell, one repetition.
    Columns and dtypes in ``TRIAL_COLUMNS``. Latencies ``latency_*_us`` are
    corrected for coordinated omission (from the intended send time, wrk2's
    method); ``uncorrected_latency_*_us`` are from the actual send time.
    ``flag_reasons`` is ``";"``-joined. ``raw_file`` is the path of the raw load
    generator JSON relative to the run folder (under ``raw/``).

``micro.csv`` and ``micro.parquet``
    One row per micro benchmark of one wait call (pytest-benchmark), columns in
    ``MICRO_COLUMNS``; times in microseconds.

``raw/``
    The load generator's JSON per trial (with HdrHistogram blobs) and the micro
    benchmarks' pytest-benchmark JSON (``raw/micro_benchmark.json``).

``charts/`` (PNG and SVG), ``report.md``, ``verdict.json``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

SCHEMA_VERSION: Final = 1
KNOWN_SCHEMA_VERSIONS: Final = frozenset({1})

RUN_JSON: Final = "run.json"
TRIALS_CSV: Final = "trials.csv"
TRIALS_PARQUET: Final = "trials.parquet"
MICRO_CSV: Final = "micro.csv"
MICRO_PARQUET: Final = "micro.parquet"
RAW_DIR: Final = "raw"
CHARTS_DIR: Final = "charts"
REPORT_MD: Final = "report.md"
VERDICT_JSON: Final = "verdict.json"
MICRO_RAW_JSON: Final = "raw/micro_benchmark.json"

# strftime format of the timestamp part of a run folder name; sorts by time.
RUN_TIMESTAMP_FORMAT: Final = "%Y%m%dT%H%M%SZ"
RUN_ID_HEX_DIGITS: Final = 6

RUN_STATUSES: Final = ("running", "complete", "partial")
TRIAL_STATUSES: Final = ("ok", "failed")
SCENARIOS: Final = ("idle-scaling", "active-scaling", "fd-limit", "churn")
MODES: Final = ("open", "closed")
MECHANISMS: Final = ("select", "poll", "epoll")
MICRO_READY: Final = ("one", "all")

# Linux FD_SETSIZE: CPython's select.select refuses any fd number >= this.
FD_SETSIZE: Final = 1024

# Keys of run.json, in the order they are written.
RUN_META_KEYS: Final = (
    "schema_version",
    "run_id",
    "created_utc",
    "finished_utc",
    "status",
    "preset",
    "config",
    "machine",
    "git",
    "cells_total",
    "cells_done",
    "duration_s",
    "warnings",
)
MACHINE_KEYS: Final = (
    "cpu_model",
    "cores",
    "cpus_allowed",
    "kernel",
    "python",
    "packages",
    "rlimit_nofile",
    "ephemeral_port_range",
    "somaxconn",
    "loadavg_start",
    "governor",
)
GIT_KEYS: Final = ("commit", "dirty")

# Column name -> pandas dtype. "Int64" and "boolean" are pandas' nullable dtypes,
# so a failed trial can leave a measurement empty instead of inventing a zero.
TRIAL_COLUMNS: Final[dict[str, str]] = {
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
}

# The columns that identify one cell (a trial minus its repetition).
CELL_KEYS: Final = (
    "scenario",
    "backend",
    "protocol",
    "mode",
    "idle_connections",
    "active_connections",
    "rate_rps_requested",
)

MICRO_COLUMNS: Final[dict[str, str]] = {
    "mechanism": "string",
    "n_registered": "Int64",
    "ready": "string",
    "median_us": "float64",
    "mean_us": "float64",
    "stddev_us": "float64",
    "iqr_us": "float64",
    "min_us": "float64",
    "rounds": "Int64",
}
MICRO_KEYS: Final = ("mechanism", "n_registered", "ready")

# Keys under which a raw load generator JSON may carry its merged, corrected
# HdrHistogram (base64 of HdrHistogram.encode()), searched in this order at any
# depth by bench.present.charts; the percentile columns are used when none is found.
RAW_HISTOGRAM_KEYS: Final = (
    "histogram_corrected",
    "corrected_histogram",
    "histogram_blob",
    "histogram",
)
# HdrHistogram values in raw files are recorded in this unit.
RAW_HISTOGRAM_UNIT_US_PER_VALUE: Final = 1.0

VERDICT_STATUSES: Final = ("SUPPORTED", "PARTLY SUPPORTED", "NOT SUPPORTED", "INCONCLUSIVE")


def default_results_dir() -> Path:
    """Where runs live unless told otherwise: $BENCH_RESULTS_DIR, else ./results."""
    return Path(os.environ.get("BENCH_RESULTS_DIR", "results"))
