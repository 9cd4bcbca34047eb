"""The on-disk contract of a run folder: names, columns, units and the schema version.

Everything that writes a run (the runner) and everything that reads one (results,
analysis, charts, verdict, report, compare, notebooks) imports its names from here,
so that the two halves cannot drift apart. Change a column only together with
``SCHEMA_VERSION``; ``bench.store.results.load`` refuses versions it does not know.

Run folder ``results/<YYYYmmddTHHMMSSZ>_<6 hex>/`` (names sort by time, like
pytest-benchmark's storage and asv's results):

``run.json``
    ``{schema_version: 2, run_id, created_utc, finished_utc, status:
    "running"|"complete"|"partial"|"failed", preset, config (the frozen bench config
    as a dict), machine {cpu_model, cores, cpus_allowed, kernel, python, packages
    {name: version}, rlimit_nofile, ephemeral_port_range, somaxconn,
    loadavg_start, governor}, git {commit, dirty}, cells_total, cells_done,
    duration_s, warnings [str], placement, writer, failure, manifest}``.
    Timestamps are ISO 8601 UTC strings. ``writer`` is the process writing the
    folder ``{pid, hostname, boot_id, start_ticks}`` (``bench.store.liveness``: a
    "running" run whose writer is gone is read as interrupted); ``failure`` is why
    a "failed" run stopped (a write that failed, e.g. a full disk), else null;
    ``manifest`` proves the folder's integrity (``bench.store.manifest``):
    ``{tables: {file: {rows, bytes, sha256}}, raw: {file under raw/: {bytes,
    sha256, trial}}}``, updated with each write. Version 1 folders have neither
    ``writer`` nor ``manifest``: they are read unverified.
    ``placement`` says where the processes ran: ``{kind: "local"}`` on this host
    (``machine`` describes it), or ``{kind: "dask", scheduler, bench_host,
    allow_remote, clock_method, hosts: [{role: "server"|"load", hostname, address,
    worker, cpus_allowed, rlimit_nofile, ephemeral_port_range, somaxconn, git,
    clock {offset_mono_s, offset_wall_s, rtt_s, uncertainty_s, ...},
    clock_per_trial, lost}]}`` for a run with ``--cluster``; each trial's raw
    document then has the same per trial (``loadgen.placement``).

``trials.csv`` and ``trials.parquet``
    One row per trial: one server process measured at one cell, one repetition.
    Columns and dtypes in ``TRIAL_COLUMNS``; what each measured column means, its
    unit and which way is better in ``bench.metrics`` (a plugin's metric is a column
    after the built-in ones; ``results.load`` keeps it where the plugin is not
    loaded). Latencies ``latency_*_us`` are
    corrected for coordinated omission (from the intended send time, wrk2's
    method); ``uncorrected_latency_*_us`` are from the actual send time.
    ``flag_reasons`` is ``";"``-joined. ``raw_file`` is the path of the raw load
    generator JSON relative to the run folder (under ``raw/``).

``micro.csv`` and ``micro.parquet``
    One row per micro benchmark and process (pytest-benchmark; ``process`` is which
    fresh subprocess timed it, empty in runs from before the processes), columns in
    ``MICRO_COLUMNS``; times in microseconds.

``raw/``
    The load generator's JSON per trial (with HdrHistogram blobs; from version 2
    also the trial's table row under ``row``, so the tables can be rebuilt from
    ``raw/`` alone: the raw files are the source of truth) and the micro
    benchmarks' pytest-benchmark JSON (``raw/micro_benchmark.json``: the processes'
    documents merged, each benchmark's ``extra_info["process"]`` naming its process).

``charts/`` (PNG and SVG), ``report.md``, ``report.html`` (one page, works offline),
``verdict.json``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from bench import metrics, tables
from bench.tables import TrialStatus
from bench.tables.micro import MICRO_COLUMNS as _MICRO_COLUMNS
from bench.tables.micro import MICRO_KEYS as _MICRO_KEYS
from servers.limits import FD_SETSIZE as _FD_SETSIZE
from servers.registry import load_plugins

# Version 2 added run.json's writer, failure and manifest and the raw documents' row.
SCHEMA_VERSION: Final = 2
KNOWN_SCHEMA_VERSIONS: Final = frozenset({1, 2})

RUN_JSON: Final = "run.json"
TRIALS_CSV: Final = "trials.csv"
TRIALS_PARQUET: Final = "trials.parquet"
MICRO_CSV: Final = "micro.csv"
MICRO_PARQUET: Final = "micro.parquet"
RAW_DIR: Final = "raw"
CHARTS_DIR: Final = "charts"
REPORT_MD: Final = "report.md"
# The same report as one self-contained page (bench.present.html_report).
REPORT_HTML: Final = "report.html"
VERDICT_JSON: Final = "verdict.json"
MICRO_RAW_JSON: Final = "raw/micro_benchmark.json"  # bench.measure.scenarios.micro.RAW_JSON
# Where a raw trial document keeps its table row (schema version 2 on; written by
# bench.measure.protocol.record, which cannot import this module).
RAW_ROW_KEY: Final = "row"
# Space the writer holds while a run is measured and gives back when a write fails,
# so that run.json can still record the failure on a full disk. run.json of a
# default-preset run with its manifest is about 30 kB.
RESERVE_FILE: Final = ".space-reserve"
RESERVE_BYTES: Final = 64 * 1024

# strftime format of the timestamp part of a run folder name; sorts by time.
RUN_TIMESTAMP_FORMAT: Final = "%Y%m%dT%H%M%SZ"
RUN_ID_HEX_DIGITS: Final = 6

# A write failed (full disk, read-only folder); run.json["failure"] says which.
RUN_FAILED: Final = "failed"
RUN_STATUSES: Final = ("running", "complete", "partial", RUN_FAILED)
# A trial's status (bench.tables.TrialStatus).
TRIAL_STATUSES: Final = tuple(TrialStatus)
MICRO_READY: Final = ("one", "all")

# Linux FD_SETSIZE: CPython's select.select refuses any fd number >= this.
FD_SETSIZE: Final = _FD_SETSIZE

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
    "placement",
    "writer",
    "failure",
    "manifest",
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


def trial_columns() -> dict[str, str]:
    """Column name -> pandas dtype of the trial table: the common columns the trial
    protocol writes, then each scenario's own, then the metrics registered from outside
    the packages (``bench.metrics.register``). All are declared in ``bench.tables`` and
    ``bench.metrics``, so reading a run folder needs no measuring code; the modules
    named in SELECTBENCH_PLUGINS are imported first (they declare their scenarios'
    columns and their metrics)."""
    load_plugins()
    columns = dict(tables.COMMON_COLUMNS)
    for scenario_columns in tables.SCENARIO_COLUMNS.values():
        columns.update(scenario_columns)
    for metric in metrics.registered():
        if metric.name in columns:
            raise ValueError(
                f"metric {metric.name!r} ({metric.computed_by[0]}) is already a column of the "
                "trial table: register it under another name"
            )
        columns[metric.name] = metric.dtype
    return columns


TRIAL_COLUMNS: Final[dict[str, str]] = trial_columns()

# The columns that identify one cell (a trial minus its repetition).
CELL_KEYS: Final = tables.CELL_KEYS

# The micro benchmark table's columns (bench.tables.micro).
MICRO_COLUMNS: Final[dict[str, str]] = _MICRO_COLUMNS
MICRO_KEYS: Final = _MICRO_KEYS

# Where a trial's raw JSON keeps the load generator's merged, corrected
# HdrHistogram (base64 of HdrHistogram.encode(), values in microseconds).
RAW_LOADGEN_KEY: Final = "loadgen"
RAW_HISTOGRAM_KEY: Final = "histogram_corrected"
RAW_HISTOGRAM_UNIT_US_PER_VALUE: Final = 1.0

VERDICT_STATUSES: Final = ("SUPPORTED", "PARTLY SUPPORTED", "NOT SUPPORTED", "INCONCLUSIVE")


def default_results_dir() -> Path:
    """Where runs live unless told otherwise: $BENCH_RESULTS_DIR, else ./results."""
    return Path(os.environ.get("BENCH_RESULTS_DIR", "results"))
