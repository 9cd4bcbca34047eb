"""Writing a run folder as the run goes: tables, raw documents and run.json with its manifest.

Each write is atomic (a temporary file, then a rename) and is recorded in
run.json's manifest (``bench.store.manifest``), which readers check. A write
that fails (full disk, read-only folder) raises ``RunWriteError``, and the run's
end is recorded as "failed" with the cause, in the room the writer held back
for it (``schema.RESERVE_BYTES``). run.json names the writing process, so a
reader can tell a run still going from one whose process died
(``bench.store.liveness``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import secrets
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd

from bench.store import manifest, schema
from bench.store.files import (
    atomic_write_bytes,
    coerce_table,
    json_bytes,
    read_json_or_none,
)
from bench.store.integrity import table_bytes
from bench.store.liveness import writer_identity
from bench.tables import utc_now_iso

__all__ = ["RunWriteError", "RunWriter", "create_run", "new_run_id"]

# What to do about a write that failed, by its errno.
_WRITE_REMEDIES = {
    errno.ENOSPC: "free space on its filesystem",
    errno.EDQUOT: "free space within your disk quota",
    errno.EROFS: "make its filesystem writable",
    errno.EACCES: "give this user write permission there",
    errno.EPERM: "give this user write permission there",
}


class RunWriteError(Exception):
    """Writing the run folder failed: the run stops; ``str()`` is the one-line message."""

    def __init__(self, folder: Path, what: str, error: OSError, trials_kept: int) -> None:
        self.folder = folder
        self.what = what
        self.error = error
        self.trials_kept = trials_kept
        # Whether run.json could record the failure (set by RunWriter.mark).
        self.recorded: bool | None = None
        super().__init__(self.reason)

    @property
    def reason(self) -> str:
        return f"cannot write {self.what}: {self.error.strerror or self.error}"

    def __str__(self) -> str:
        remedy = _WRITE_REMEDIES.get(self.error.errno or 0, "check that filesystem")
        recorded = {
            True: "run.json records the run as failed",
            False: "run.json could not record the failure (`bench list` shows the run as "
            "interrupted once this process has ended)",
            None: "",
        }[self.recorded]
        return (
            f"cannot write {self.what} in {self.folder}: {self.error.strerror or self.error}. "
            f"Kept: {self.trials_kept} finished trials in "
            f"{self.folder / schema.RAW_DIR}/ (and its tables){'; ' + recorded if recorded else ''}"
            f". Remedy: {remedy} or choose another --out; then `python -m bench report "
            f"{self.folder}` summarises the kept trials, and a new run measures the rest."
        )


def new_run_id(now: dt.datetime | None = None) -> str:
    """``<YYYYmmddTHHMMSSZ>_<6 hex>``: sorts by time, unique within a second."""
    now = now or dt.datetime.now(dt.UTC)
    suffix = secrets.token_hex(schema.RUN_ID_HEX_DIGITS // 2)
    return f"{now.strftime(schema.RUN_TIMESTAMP_FORMAT)}_{suffix}"


# The trial tables are rewritten after every TABLE_EVERY trials and when the run ends,
# not after each: every trial's raw document holds its row and is written at once
# (nothing measured is lost; readers rebuild tables that lack trials in raw/), and a
# rewrite of both tables cost ~80 ms at 113 rows, ~5 s of a default run (2026-12-06).
TABLE_EVERY = 10


class RunWriter:
    """Writes one run folder as the run goes; use as a context manager.

    Leaving the ``with`` block normally marks the run ``complete`` (unless it was
    marked already); leaving it by an exception or Ctrl-C marks it ``partial``
    (``failed`` after a failed write) and lets the exception propagate.
    """

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path = path
        self._meta = meta
        meta.update(writer=writer_identity(), failure=None, manifest=manifest.empty())
        self._rows: list[dict[str, Any]] = []
        self._unwritten = 0
        self._raw_trials = 0
        self._failure: RunWriteError | None = None
        self._t0 = time.monotonic()
        with self._writing("the run folder"):
            (path / schema.RAW_DIR).mkdir(parents=True, exist_ok=True)
            (path / schema.CHARTS_DIR).mkdir(parents=True, exist_ok=True)
            (path / schema.RESERVE_FILE).write_bytes(bytes(schema.RESERVE_BYTES))
        self._write_meta()
        self._write_trials()

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Turn an OSError into RunWriteError (the first one is the run's failure)."""
        try:
            yield
        except OSError as exc:
            kept = max(self._raw_trials, len(self._rows))
            failure = RunWriteError(self.path, what, exc, kept)
            self._failure = self._failure or failure
            raise failure from exc

    @property
    def failure(self) -> RunWriteError | None:
        """The write that failed, if one did."""
        return self._failure

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
        failed_before = self._failure is not None
        try:
            with self._writing(schema.RUN_JSON):
                atomic_write_bytes(self.path / schema.RUN_JSON, json_bytes(self._meta))
        except RunWriteError:
            # After a failed write, notes on the way out (warnings, placement) are best effort:
            # the first failure is the one to report.
            if not failed_before:
                raise

    def _write_table(self, df: pd.DataFrame, csv_name: str, parquet_name: str) -> None:
        tables = self._meta["manifest"][manifest.TABLES_KEY]
        for name, data in zip((csv_name, parquet_name), table_bytes(df), strict=True):
            with self._writing(name):
                atomic_write_bytes(self.path / name, data)
            tables[name] = manifest.table_entry(data, len(df))

    def _write_trials(self) -> None:
        df = coerce_table(pd.DataFrame(self._rows), schema.TRIAL_COLUMNS)
        self._write_table(df, schema.TRIALS_CSV, schema.TRIALS_PARQUET)

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
        self._unwritten += 1
        if self._unwritten >= TABLE_EVERY:
            self._flush_trials()
        self._write_meta()

    def _flush_trials(self) -> None:
        self._write_trials()
        self._unwritten = 0

    def write_raw_json(self, name: str, doc: Mapping[str, Any]) -> str:
        """Store a raw document under raw/; returns its path relative to the run folder."""
        rel = Path(schema.RAW_DIR) / name
        data = json_bytes(doc)
        trial = schema.RAW_ROW_KEY in doc
        with self._writing(rel.as_posix()):
            atomic_write_bytes(self.path / rel, data)
        self._meta["manifest"][manifest.RAW_KEY][name] = manifest.raw_entry(data, trial)
        self._raw_trials += trial
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
        self._write_table(table, schema.MICRO_CSV, schema.MICRO_PARQUET)
        # Its source document is written by the micro benchmarks' own processes.
        source = self.path / schema.MICRO_RAW_JSON
        if source.is_file():
            data = source.read_bytes()
            self._meta["manifest"][manifest.RAW_KEY][source.name] = manifest.raw_entry(data, False)
        self._write_meta()

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
        """Record the run's final status with its finish time and duration.

        After a failed write any end but "running" is recorded as "failed" with the
        failure, in the room the reserve file gives back; whether that worked is
        the failure's ``recorded``.
        """
        if status not in schema.RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}; use one of {schema.RUN_STATUSES}")
        if status != "running" and self._unwritten and self._failure is None:
            # A failed write is recorded as the run's failure by _writing.
            with contextlib.suppress(RunWriteError):
                self._flush_trials()
        if status != "running":
            with contextlib.suppress(OSError):
                (self.path / schema.RESERVE_FILE).unlink(missing_ok=True)
            if self._failure is not None:
                status = schema.RUN_FAILED
                self._meta["failure"] = self._failure.reason
            self._meta["finished_utc"] = utc_now_iso()
            self._meta["duration_s"] = round(time.monotonic() - self._t0, 3)
        self._meta["status"] = status
        failure = self._failure
        self._write_meta()
        if failure is not None:
            on_disk = read_json_or_none(self.path / schema.RUN_JSON) or {}
            failure.recorded = on_disk.get("status") == status

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
