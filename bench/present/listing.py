"""`bench list`: one line per past run, newest last, readable without opening any folder."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.present.verdict_table import verdict_summary
from bench.store import schema
from bench.store.integrity import read_copy
from bench.store.liveness import run_state
from bench.store.results import UnknownSchemaVersionError, available_runs, read_meta
from bench.store.verdict_file import load_verdict

LIST_COLUMNS = (
    "run_id",
    "date_utc",
    "preset",
    "commit",
    "status",
    "trials",
    "duration_s",
    "verdict",
    "last_trial",
)


def _trials(path: Path) -> pd.DataFrame | None:
    """The trial table as stored, unverified (a listing only counts it); None if unreadable."""
    for name in (schema.TRIALS_PARQUET, schema.TRIALS_CSV):
        try:
            return read_copy(path / name)
        except Exception:  # any damage: `bench report` says which and rebuilds it
            continue
    return None


def list_runs(results_dir: str | Path | None = None) -> pd.DataFrame:
    """Every run under ``results_dir`` (default ./results), oldest first.

    A run whose run.json is unreadable or of an unknown schema version is still
    listed, with the problem in its status, so that it can be found and removed.
    A run that did not finish (interrupted, failed, or "running" but its process
    is gone) is shown so, with the last trial it wrote.
    """
    rows = []
    for path in available_runs(results_dir):
        row: dict[str, object] = {"run_id": path.name}
        try:
            meta = read_meta(path)
        except (UnknownSchemaVersionError, ValueError) as exc:
            kind = "unknown schema" if isinstance(exc, UnknownSchemaVersionError) else "unreadable"
            rows.append({**row, "status": kind})
            continue
        git = meta.get("git") or {}
        commit = str(git.get("commit") or "")[:10]
        if git.get("dirty"):
            commit += "+dirty"
        try:
            summary = verdict_summary(load_verdict(path)) or "(no verdict yet)"
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, KeyError, TypeError):
            summary = "(verdict.json unreadable: `bench report` rewrites it)"
        trials = _trials(path)
        state = run_state(meta, trials, path)
        rows.append(
            {
                **row,
                "date_utc": str(meta.get("created_utc", ""))[:19].replace("T", " "),
                "preset": meta.get("preset"),
                "commit": commit,
                "status": state.label,
                "trials": None if trials is None else len(trials),
                "duration_s": meta.get("duration_s"),
                "verdict": summary,
                "last_trial": state.last,
            }
        )
    return pd.DataFrame(rows, columns=list(LIST_COLUMNS))


def format_run_list(runs: pd.DataFrame) -> str:
    """Plain-text table of ``list_runs`` output."""
    if runs.empty:
        return "No runs yet. Make one with `python -m bench run`."
    shown = runs.astype(object).fillna("").astype(str)
    return shown.to_string(index=False)
