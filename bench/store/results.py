"""The run store: create a run folder, keep its tables on disk as they grow, load it back.

A run folder alone is enough to redraw every chart and rewrite every report, so
the writer rewrites ``trials.csv`` / ``trials.parquet`` after every trial: an
interrupted run keeps what it measured. The loader refuses a ``schema_version``
it does not know instead of guessing (asv and pytest-benchmark do the same).
Names and columns come from ``bench.store.schema``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd

from bench.measure.placement import utc_now_iso
from bench.store import schema

__all__ = ["RunData", "RunWriter", "create_run", "load", "resolve_run_path", "utc_now_iso"]


class RunNotFoundError(LookupError):
    """The requested run does not exist; the message lists the runs that do."""


class UnknownSchemaVersionError(ValueError):
    """run.json carries a schema_version this version of bench cannot read."""


def new_run_id(now: dt.datetime | None = None) -> str:
    """``<YYYYmmddTHHMMSSZ>_<6 hex>``: sorts by time, unique within a second."""
    now = now or dt.datetime.now(dt.UTC)
    suffix = secrets.token_hex(schema.RUN_ID_HEX_DIGITS // 2)
    return f"{now.strftime(schema.RUN_TIMESTAMP_FORMAT)}_{suffix}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def atomic_write_json(path: Path, doc: Mapping[str, Any]) -> None:
    atomic_write_bytes(
        path, (json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n").encode()
    )


def _write_table(df: pd.DataFrame, csv_path: Path, parquet_path: Path) -> None:
    tmp_csv = csv_path.with_name(f".{csv_path.name}.tmp")
    df.to_csv(tmp_csv, index=False)
    os.replace(tmp_csv, csv_path)
    tmp_pq = parquet_path.with_name(f".{parquet_path.name}.tmp")
    df.to_parquet(tmp_pq, index=False)
    os.replace(tmp_pq, parquet_path)


_BOOL_WORDS = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}


def _coerce_bool(series: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("boolean")
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.map(lambda v: pd.NA if pd.isna(v) else bool(v)).astype("boolean")
    words = series.astype("string").str.strip().str.lower()
    return words.map(_BOOL_WORDS, na_action="ignore").astype("boolean")


def coerce_table(df: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    """Return ``df`` with exactly ``columns`` (missing ones empty) in their schema dtypes."""
    df = df.reset_index(drop=True)
    out: dict[str, pd.Series] = {}
    for name, dtype in columns.items():
        if name in df.columns:
            col = df[name]
        else:
            col = pd.Series([pd.NA] * len(df), index=df.index, dtype="object")
        if dtype == "boolean":
            out[name] = _coerce_bool(col)
        elif dtype == "Int64":
            out[name] = pd.to_numeric(col, errors="coerce").round().astype("Int64")
        elif dtype == "float64":
            out[name] = pd.to_numeric(col, errors="coerce").astype("float64")
        else:
            # CSV cannot tell "" from missing, so both tables store an empty text as NA.
            text = col.astype("string")
            out[name] = text.mask(text == "", pd.NA)
    return pd.DataFrame(out, index=df.index)


def empty_table(columns: Mapping[str, str]) -> pd.DataFrame:
    return coerce_table(pd.DataFrame(), columns)


@dataclass(frozen=True)
class RunData:
    """One run as read back from its folder: everything charts, verdict and report need."""

    path: Path
    meta: dict[str, Any]
    trials: pd.DataFrame
    micro: pd.DataFrame
    verdict: dict[str, Any] | None = field(default=None)

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id", self.path.name))

    @property
    def charts_dir(self) -> Path:
        return self.path / schema.CHARTS_DIR


class RunWriter:
    """Writes one run folder as the run goes; use as a context manager.

    Leaving the ``with`` block normally marks the run ``complete`` (unless it was
    marked already); leaving it by an exception or Ctrl-C marks it ``partial``
    and lets the exception propagate.
    """

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path = path
        self._meta = meta
        self._rows: list[dict[str, Any]] = []
        self._t0 = time.monotonic()
        (path / schema.RAW_DIR).mkdir(parents=True, exist_ok=True)
        (path / schema.CHARTS_DIR).mkdir(parents=True, exist_ok=True)
        self._write_meta()
        self._write_trials()

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self._meta)

    @property
    def run_id(self) -> str:
        return str(self._meta["run_id"])

    @property
    def raw_dir(self) -> Path:
        return self.path / schema.RAW_DIR

    def _write_meta(self) -> None:
        atomic_write_json(self.path / schema.RUN_JSON, self._meta)

    def _write_trials(self) -> None:
        df = coerce_table(pd.DataFrame(self._rows), schema.TRIAL_COLUMNS)
        _write_table(df, self.path / schema.TRIALS_CSV, self.path / schema.TRIALS_PARQUET)

    def append_trial(self, row: Mapping[str, Any]) -> None:
        """Add one trial and rewrite the trial tables, so nothing measured is lost.

        Unknown column names are refused (they would silently vanish from the
        tables); missing ones are stored empty. ``run_id`` is filled in.
        """
        unknown = sorted(set(row) - set(schema.TRIAL_COLUMNS))
        if unknown:
            raise ValueError(
                f"trial row has columns the schema does not know: {unknown}. "
                "Add them to bench.store.schema.TRIAL_COLUMNS (and bump SCHEMA_VERSION) "
                "or drop them from the row."
            )
        full = dict(row)
        full.setdefault("run_id", self.run_id)
        if isinstance(full.get("flag_reasons"), list | tuple):
            full["flag_reasons"] = ";".join(full["flag_reasons"])
        self._rows.append(full)
        self._write_trials()

    def write_raw_json(self, name: str, doc: Mapping[str, Any]) -> str:
        """Store a raw document under raw/; returns its path relative to the run folder."""
        rel = Path(schema.RAW_DIR) / name
        atomic_write_json(self.path / rel, doc)
        return rel.as_posix()

    def write_micro(self, df: pd.DataFrame) -> None:
        """Store the micro benchmark table (columns of ``schema.MICRO_COLUMNS``)."""
        # Tables written before the micro benchmarks timed other operations than
        # the wait call have no "operation" column: their rows are wait calls.
        df = df if "operation" in df.columns else df.assign(operation="wait")
        missing = [c for c in schema.MICRO_KEYS if c not in df.columns]
        if missing:
            raise ValueError(
                f"micro table lacks key columns {missing}; build it with bench.measure.micro."
            )
        table = coerce_table(df, schema.MICRO_COLUMNS)
        _write_table(table, self.path / schema.MICRO_CSV, self.path / schema.MICRO_PARQUET)

    def write_table(self, name: str, df: pd.DataFrame) -> None:
        """Store the table an in-process scenario measured (only ``micro`` has one today)."""
        if name != "micro":
            raise ValueError(
                f"no table is defined for scenario {name!r}: add its file names and columns "
                "to bench.store.schema first"
            )
        self.write_micro(df)

    def update_meta(self, **fields: Any) -> None:
        """Set run.json fields (e.g. cells_total, cells_done) and rewrite it."""
        unknown = sorted(set(fields) - set(schema.RUN_META_KEYS))
        if unknown:
            raise ValueError(f"run.json has no fields {unknown}; known: {schema.RUN_META_KEYS}")
        self._meta.update(fields)
        self._write_meta()

    def add_warning(self, text: str) -> None:
        self._meta.setdefault("warnings", []).append(text)
        self._write_meta()

    def mark(self, status: str) -> None:
        """Record the run's final status with its finish time and duration."""
        if status not in schema.RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}; use one of {schema.RUN_STATUSES}")
        self._meta["status"] = status
        if status != "running":
            self._meta["finished_utc"] = utc_now_iso()
            self._meta["duration_s"] = round(time.monotonic() - self._t0, 3)
        self._write_meta()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.mark("partial")
        elif self._meta.get("status") == "running":
            self.mark("complete")


def create_run(
    out_dir: str | Path,
    preset: str,
    config: Mapping[str, Any],
    machine: Mapping[str, Any],
    git: Mapping[str, Any],
    *,
    cells_total: int = 0,
    placement: Mapping[str, Any] | None = None,
) -> RunWriter:
    """Create ``out_dir/<timestamp>_<id>/`` with run.json (status running) and empty tables.

    ``placement`` describes where the processes run (``schema``); default: this host.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    run_id = new_run_id(now)
    path = out / run_id
    path.mkdir()
    meta: dict[str, Any] = {
        "schema_version": schema.SCHEMA_VERSION,
        "run_id": run_id,
        "created_utc": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "finished_utc": None,
        "status": "running",
        "preset": preset,
        "config": dict(config),
        "machine": dict(machine),
        "git": dict(git),
        "cells_total": cells_total,
        "cells_done": 0,
        "duration_s": None,
        "warnings": [],
        "placement": dict(placement) if placement is not None else {"kind": "local"},
    }
    return RunWriter(path, meta)


def available_runs(results_dir: str | Path | None = None) -> list[Path]:
    """Run folders (those holding run.json) under ``results_dir``, oldest first."""
    root = Path(results_dir) if results_dir is not None else schema.default_results_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / schema.RUN_JSON).is_file())


def _not_found(what: str, root: Path) -> RunNotFoundError:
    runs = available_runs(root)
    listing = ", ".join(p.name for p in runs[-10:]) if runs else "none"
    more = f" (last 10 of {len(runs)})" if len(runs) > 10 else ""
    return RunNotFoundError(
        f"no run {what!r}: no folder with {schema.RUN_JSON} there or under {root}. "
        f"Available runs{more}: {listing}. Pass a run folder path, a run id, or 'latest'; "
        "make one with `python -m bench run`."
    )


def resolve_run_path(path_or_latest: str | Path, results_dir: str | Path | None = None) -> Path:
    """Turn 'latest', a run id, or a folder path into a run folder path."""
    root = Path(results_dir) if results_dir is not None else schema.default_results_dir()
    if str(path_or_latest) == "latest":
        runs = available_runs(root)
        if not runs:
            raise _not_found("latest", root)
        return runs[-1]
    candidate = Path(path_or_latest)
    for p in (candidate, root / candidate):
        if (p / schema.RUN_JSON).is_file():
            return p
    # A unique prefix of a run id is enough (like git's short hashes).
    matches = [p for p in available_runs(root) if p.name.startswith(str(path_or_latest))]
    if len(matches) == 1:
        return matches[0]
    raise _not_found(str(path_or_latest), root)


def read_meta(path: Path) -> dict[str, Any]:
    """Read run.json and check its schema_version."""
    meta_path = path / schema.RUN_JSON
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{meta_path} is not valid JSON ({exc}); the run was probably cut off while "
            "writing it. Delete the folder or fix the file by hand."
        ) from exc
    version = meta.get("schema_version")
    if version not in schema.KNOWN_SCHEMA_VERSIONS:
        raise UnknownSchemaVersionError(
            f"{meta_path} has schema_version {version!r}, but this bench reads only "
            f"{sorted(schema.KNOWN_SCHEMA_VERSIONS)}. The run was written by a different "
            "version of bench: check out the commit it names in run.json['git'] to read it, "
            "or rerun the measurement with this version (`python -m bench run`)."
        )
    return meta


def _read_table(path: Path, parquet: str, csv: str, columns: Mapping[str, str]) -> pd.DataFrame:
    """The table in the schema's columns and dtypes, then any column the schema lacks as
    stored (a metric a plugin added, read where that plugin is not loaded)."""
    if (path / parquet).is_file():
        df = pd.read_parquet(path / parquet)
    elif (path / csv).is_file():
        df = pd.read_csv(path / csv, keep_default_na=True)
    else:
        return empty_table(columns)
    extra = [c for c in df.columns if c not in columns]
    table = coerce_table(df, columns)
    return pd.concat([table, df[extra].reset_index(drop=True)], axis=1) if extra else table


def load(path_or_latest: str | Path = "latest", results_dir: str | Path | None = None) -> RunData:
    """Read a run folder: run.json, trials, micro benchmarks and verdict (if written).

    ``path_or_latest`` is ``"latest"`` (newest run under ``results_dir``), a run
    folder path, a run id (or a unique prefix of one) under ``results_dir``.
    """
    path = resolve_run_path(path_or_latest, results_dir)
    meta = read_meta(path)
    trials = _read_table(path, schema.TRIALS_PARQUET, schema.TRIALS_CSV, schema.TRIAL_COLUMNS)
    micro = _read_table(path, schema.MICRO_PARQUET, schema.MICRO_CSV, schema.MICRO_COLUMNS)
    if "operation" in micro.columns:  # runs from before the column existed: wait calls
        micro["operation"] = micro["operation"].fillna("wait")
    verdict_path = path / schema.VERDICT_JSON
    verdict = json.loads(verdict_path.read_text()) if verdict_path.is_file() else None
    return RunData(path=path, meta=meta, trials=trials, micro=micro, verdict=verdict)
