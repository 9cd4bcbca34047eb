"""A run folder's files as bytes on disk: atomic writes and tables in their schema dtypes."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file.

    A failed write removes its temporary file: on a full disk it holds the space
    the next write (run.json recording the failure) needs.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            # A write that fails on flush names no file: name the one meant.
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def json_bytes(doc: Mapping[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n").encode()


def atomic_write_json(path: Path, doc: Mapping[str, Any]) -> None:
    atomic_write_bytes(path, json_bytes(doc))


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


def schema_table(df: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    """The table in the schema's columns and dtypes, then any column the schema lacks as
    stored (a metric a plugin added, read where that plugin is not loaded)."""
    extra = [c for c in df.columns if c not in columns]
    table = coerce_table(df, columns)
    return pd.concat([table, df[extra].reset_index(drop=True)], axis=1) if extra else table


def read_json_or_none(path: Path) -> Any:
    """The JSON document at ``path``; None when it is missing or not JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
