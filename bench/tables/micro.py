"""The micro table: its columns, and its rows from pytest-benchmark's JSON.

Declared here, outside the stages, because the producer (``bench.measure.micro``)
writes it and the store rebuilds it from a run's raw JSON without the measuring
code. Times are microseconds per call; see ``bench.measure.micro`` for what each
operation times.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

# Column name -> pandas dtype of the micro table (times in microseconds).
MICRO_COLUMNS: dict[str, str] = {
    "operation": "string",
    "mechanism": "string",
    "n_registered": "Int64",
    "ready": "string",
    "process": "Int64",
    "median_us": "float64",
    "mean_us": "float64",
    "stddev_us": "float64",
    "iqr_us": "float64",
    "min_us": "float64",
    "rounds": "Int64",
}
# The columns that identify one micro benchmark (each process times it once).
MICRO_KEYS = ("operation", "mechanism", "n_registered", "ready")
PROCESS = "process"

US_PER_S = 1e6


def empty_micro_table() -> pd.DataFrame:
    return pd.DataFrame(columns=list(MICRO_COLUMNS)).astype(MICRO_COLUMNS)


def _row(
    info: dict[str, Any], op: str, ready: str, stats: dict[str, Any], scale: float,
    n_registered: int | None = None,
) -> dict:  # fmt: skip
    process = info.get(PROCESS)
    return {
        "operation": op,
        "mechanism": info["mechanism"],
        "n_registered": int(info["n_registered"] if n_registered is None else n_registered),
        "ready": ready,
        PROCESS: pd.NA if process is None else int(process),
        "median_us": stats["median"] * scale,
        "mean_us": stats["mean"] * scale,
        "stddev_us": stats["stddev"] * scale,
        "iqr_us": stats["iqr"] * scale,
        "min_us": stats["min"] * scale,
        "rounds": int(stats["rounds"]),
    }


def micro_table_from_json(doc: dict[str, Any] | str | Path) -> pd.DataFrame:
    """pytest-benchmark JSON (dict or file path) -> one row per benchmark, times in us.

    A benchmark's ``extra_info`` may carry ``rows`` (each with its own
    ``operation``, ``ready``, ``stats_us`` and optionally ``n_registered``, timed
    by the benchmark's own clocks) or a ``batch`` (calls per timed round: the times
    are divided by it), and ``process`` (which subprocess timed it; missing in
    documents from before the per-process layout).
    """
    if not isinstance(doc, dict):
        doc = json.loads(Path(doc).read_text())
    rows = []
    for bench in doc.get("benchmarks", []):
        info = dict(bench.get("extra_info") or {})
        params = bench.get("params") or {}
        info.setdefault("mechanism", params.get("mechanism"))
        info.setdefault("n_registered", params.get("descriptors"))
        info.setdefault("ready", params.get("ready"))
        own_rows = info.get("rows")
        if (
            info["mechanism"] is None
            or info["n_registered"] is None
            or (info["ready"] is None and not own_rows)
        ):
            raise ValueError(
                f"benchmark {bench.get('name')!r} lacks mechanism / n_registered / ready; "
                "it was not written by bench/measure/micro/wait_cost.py (or its siblings)"
            )
        if own_rows:
            rows += [
                _row(info, r["operation"], r["ready"], r["stats_us"], 1.0, r.get("n_registered"))
                for r in own_rows
            ]
            continue
        scale = US_PER_S / float(info.get("batch") or 1)
        rows.append(_row(info, info.get("operation", "wait"), info["ready"], bench["stats"], scale))
    if not rows:
        return empty_micro_table()
    df = pd.DataFrame(rows, columns=list(MICRO_COLUMNS)).astype(MICRO_COLUMNS)
    return df.sort_values([*MICRO_KEYS, PROCESS]).reset_index(drop=True)
