"""`bench list`: one line per past run, newest last, readable without opening any folder."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.present.verdict_table import verdict_summary
from bench.store import schema
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
)


def _trial_count(path: Path) -> int | None:
    csv = path / schema.TRIALS_CSV
    if not csv.is_file():
        return None
    with csv.open() as fh:
        return max(0, sum(1 for _ in fh) - 1)


def list_runs(results_dir: str | Path | None = None) -> pd.DataFrame:
    """Every run under ``results_dir`` (default ./results), oldest first.

    A run whose run.json is unreadable or of an unknown schema version is still
    listed, with the problem in its status, so that it can be found and removed.
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
            verdict = load_verdict(path)
        except json.JSONDecodeError:
            verdict = None
        rows.append(
            {
                **row,
                "date_utc": str(meta.get("created_utc", ""))[:19].replace("T", " "),
                "preset": meta.get("preset"),
                "commit": commit,
                "status": meta.get("status"),
                "trials": _trial_count(path),
                "duration_s": meta.get("duration_s"),
                "verdict": verdict_summary(verdict) or "(no verdict yet)",
            }
        )
    return pd.DataFrame(rows, columns=list(LIST_COLUMNS))


def format_run_list(runs: pd.DataFrame) -> str:
    """Plain-text table of ``list_runs`` output."""
    if runs.empty:
        return "No runs yet. Make one with `python -m bench run`."
    shown = runs.fillna("").astype(str)
    return shown.to_string(index=False)
