"""Reading a run folder's tables only when they prove to be the ones the writer wrote.

Each table (trials, micro) is read from the first of its two copies (parquet,
CSV) that matches run.json's manifest (``bench.store.manifest``). When neither
does (cut off, emptied, not CSV, missing) or the table lacks a trial whose raw
document is in ``raw/``, the table is rebuilt from ``raw/`` (the raw files are
the source of truth: from version 2 each trial's raw document holds its row),
written back and the manifest updated; ``load`` says so in one line. A raw file
that differs from the manifest is refused (``RunIntegrityError``) with the file
and the cause: nothing can be rebuilt from a damaged source. A version 1 folder
has no manifest: its tables are read unverified, checked only against the names
of the files in ``raw/``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.store import manifest, schema
from bench.tables.micro import micro_table_from_json

RERUN = "restore it from a copy or rerun the measurement (`python -m bench run`)"


class RunFolderError(ValueError):
    """A run folder cannot be read as it is; the message names the file, cause and remedy."""


class RunIntegrityError(RunFolderError):
    """A file of a run folder differs from its manifest and cannot be rebuilt."""


@dataclass(frozen=True)
class TableFiles:
    """One table's two copies, its columns and how to rebuild it from ``raw/``."""

    name: str
    parquet: str
    csv: str
    columns: Mapping[str, str]


TRIALS = TableFiles("trials", schema.TRIALS_PARQUET, schema.TRIALS_CSV, schema.TRIAL_COLUMNS)
MICRO = TableFiles("micro", schema.MICRO_PARQUET, schema.MICRO_CSV, schema.MICRO_COLUMNS)


def table_bytes(df: pd.DataFrame) -> tuple[bytes, bytes]:
    """The CSV and parquet files of ``df``, as the writer stores them."""
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return df.to_csv(index=False).encode(), buf.getvalue()


def read_copy(path: Path) -> pd.DataFrame:
    """One copy of a table as stored (parquet or CSV, by its suffix)."""
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, keep_default_na=True)


def _raw_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunIntegrityError(f"{path} is damaged: not a JSON document ({exc}); {RERUN}") from exc
    if not isinstance(doc, dict):
        raise RunIntegrityError(f"{path} is damaged: not a JSON object; {RERUN}")
    return doc


def _is_micro_raw(name: str) -> bool:
    micro = Path(schema.MICRO_RAW_JSON)
    return name.startswith(micro.stem) and name.endswith(micro.suffix)


class FolderCheck:
    """The raw files and tables of one run folder against its manifest (None: version 1)."""

    def __init__(self, path: Path, listed: dict[str, Any] | None) -> None:
        self.path = path
        self.listed = listed
        self.raw_dir = path / schema.RAW_DIR
        self.notes: list[str] = []
        self.rebuilt: dict[str, tuple[bytes, bytes, int]] = {}

    def check_raw(self) -> None:
        """Refuse a raw file that differs from the manifest: the source cannot be rebuilt."""
        for name, entry in (self.listed or {}).get(manifest.RAW_KEY, {}).items():
            why = manifest.mismatch(self.raw_dir / name, entry)
            if why:
                raise RunIntegrityError(
                    f"{self.raw_dir / name} is damaged: {why}. The raw files are the source "
                    f"of truth and cannot be rebuilt: {RERUN}"
                )

    def trial_raw_names(self) -> list[str]:
        """The trial documents in raw/: the manifest's, and any written after its last update."""
        names = sorted(
            p.name
            for p in self.raw_dir.glob("*.json")
            if not p.name.startswith(".") and not _is_micro_raw(p.name)
        )
        if self.listed is None:
            return names
        raw = self.listed[manifest.RAW_KEY]
        unlisted = [n for n in names if n not in raw]
        extra = [n for n in unlisted if schema.RAW_ROW_KEY in _raw_json(self.raw_dir / n)]
        return sorted([n for n, e in raw.items() if e.get("trial")] + extra)

    def _copy(self, files: TableFiles) -> tuple[pd.DataFrame | None, list[str]]:
        """The first copy that matches the manifest (or, unverified, that reads), and what is
        wrong with the copies: both are checked, so a damaged one is rewritten."""
        problems: list[str] = []
        found: pd.DataFrame | None = None
        tables = (self.listed or {}).get(manifest.TABLES_KEY, {})
        for name in (files.parquet, files.csv):
            path = self.path / name
            entry = tables.get(name)
            why = manifest.mismatch(path, entry) if entry is not None else None
            if why is None and not path.is_file():
                why = "missing"
            if why is None and (found is None or self.listed is None):
                try:
                    table = read_copy(path)
                except Exception as exc:  # any damage a reader can meet: cut, empty, not a table
                    why = f"unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
                else:
                    found = table if found is None else found
            if why is not None:
                problems.append(f"{name}: {why}")
        return found, problems

    def _rows_from_raw(self, names: list[str], cause: str) -> pd.DataFrame:
        rows = []
        for name in names:
            doc = _raw_json(self.raw_dir / name)
            row = doc.get(schema.RAW_ROW_KEY)
            if not isinstance(row, dict):
                raise RunIntegrityError(
                    f"the trial table of {self.path} is damaged or incomplete ({cause}) and "
                    f"cannot be rebuilt: {self.raw_dir / name} holds no table row (written "
                    f"before run.json schema version 2); {RERUN}"
                )
            rows.append({**row, "raw_file": f"{schema.RAW_DIR}/{name}"})
        df = pd.DataFrame(rows)
        if "order_index" in df.columns:  # the order they were measured and appended in
            df = df.sort_values("order_index", kind="stable")
        return df

    def trials(self, run_id: str, coerce: Callable[..., pd.DataFrame]) -> pd.DataFrame:
        names = self.trial_raw_names()
        df, problems = self._copy(TRIALS)
        if df is not None:
            have = set(df["raw_file"].dropna().astype(str)) if "raw_file" in df.columns else set()
            lacking = [n for n in names if f"{schema.RAW_DIR}/{n}" not in have]
            if not lacking and not problems:
                return df
            if not lacking:
                # One copy is good: the other is rewritten from it, no raw file is needed.
                return self._rebuilt(TRIALS, df, problems, coerce, "its other copy")
            problems.append(f"the table lacks {len(lacking)} of the {len(names)} trials in raw/")
        cause = "; ".join(problems)
        if not names:
            raise RunIntegrityError(
                f"the trial table of {self.path} is damaged ({cause}) and raw/ holds no "
                f"trial to rebuild it from; {RERUN}"
            )
        rows = self._rows_from_raw(names, cause).assign(run_id=run_id)
        return self._rebuilt(TRIALS, rows, problems, coerce, f"raw/ ({len(rows)} trials)")

    def micro(self, coerce: Callable[..., pd.DataFrame]) -> pd.DataFrame:
        tables = (self.listed or {}).get(manifest.TABLES_KEY, {})
        expected = any(n in tables for n in (MICRO.parquet, MICRO.csv))
        present = any((self.path / n).is_file() for n in (MICRO.parquet, MICRO.csv))
        if not expected and not present:
            return coerce(pd.DataFrame(), MICRO.columns)
        df, problems = self._copy(MICRO)
        if df is not None and not problems:
            return df
        if df is not None:
            return self._rebuilt(MICRO, df, problems, coerce, "its other copy")
        source = self.path / schema.MICRO_RAW_JSON
        if not source.is_file():
            raise RunIntegrityError(
                f"the micro table of {self.path} is damaged ({'; '.join(problems)}) and "
                f"{source} is missing, so it cannot be rebuilt; {RERUN}"
            )
        try:
            table = micro_table_from_json(_raw_json(source))
        except (KeyError, TypeError, ValueError) as exc:
            raise RunIntegrityError(
                f"{source} is damaged: not a micro benchmark document ({exc}); {RERUN}"
            ) from exc
        return self._rebuilt(MICRO, table, problems, coerce, f"{schema.MICRO_RAW_JSON}")

    def _rebuilt(
        self,
        files: TableFiles,
        df: pd.DataFrame,
        problems: list[str],
        coerce: Callable[..., pd.DataFrame],
        source: str,
    ) -> pd.DataFrame:
        table = coerce(df, files.columns)
        csv, parquet = table_bytes(table)
        self.rebuilt[files.csv] = (csv, parquet, len(table))
        self.notes.append(f"{files.name} table rebuilt from {source} ({'; '.join(problems)})")
        return table

    def write_back(self, meta: dict[str, Any], write: Callable[[Path, bytes], None]) -> bool:
        """Store the rebuilt tables and their manifest entries; False when it cannot write."""
        if not self.rebuilt:
            return True
        # A version 1 folder gets its tables back but no manifest: its raw files were never
        # listed, so a manifest would prove nothing about them.
        listed = meta.get("manifest") or manifest.empty()
        try:
            for files in (TRIALS, MICRO):
                if files.csv not in self.rebuilt:
                    continue
                csv, parquet, rows = self.rebuilt[files.csv]
                write(self.path / files.csv, csv)
                write(self.path / files.parquet, parquet)
                listed[manifest.TABLES_KEY][files.csv] = manifest.table_entry(csv, rows)
                listed[manifest.TABLES_KEY][files.parquet] = manifest.table_entry(parquet, rows)
            if "manifest" in meta:
                write(
                    self.path / schema.RUN_JSON,
                    (json.dumps(meta, indent=2, default=str) + "\n").encode(),
                )
        except OSError as exc:
            self.notes.append(f"the rebuilt tables could not be written back ({exc.strerror})")
            return False
        return True
