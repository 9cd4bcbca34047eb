"""Micro benchmarks of one wait call, run through pytest-benchmark, and their tidy table.

``run_micro`` runs ``bench/measure/micro/test_wait_cost.py`` in a pytest subprocess with
``--benchmark-json`` and converts that JSON (``micro_table_from_json``) into the
``micro.csv`` columns of ``MICRO_COLUMNS`` (microseconds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

# Column name -> pandas dtype of the micro table (times in microseconds).
MICRO_COLUMNS: dict[str, str] = {
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
# The columns that identify one micro benchmark.
MICRO_KEYS = ("mechanism", "n_registered", "ready")

BENCH_MODULE = Path(__file__).with_name("test_wait_cost.py")
US_PER_S = 1e6


class MicroBenchmarkError(RuntimeError):
    """The micro benchmark subprocess failed or wrote no JSON."""


def micro_table_from_json(doc: dict[str, Any] | str | Path) -> pd.DataFrame:
    """pytest-benchmark JSON (dict or file path) -> one row per benchmark, times in us."""
    if not isinstance(doc, dict):
        doc = json.loads(Path(doc).read_text())
    rows = []
    for bench in doc.get("benchmarks", []):
        info = bench.get("extra_info") or {}
        params = bench.get("params") or {}
        stats = bench["stats"]
        mechanism = info.get("mechanism", params.get("mechanism"))
        n = info.get("n_registered", params.get("descriptors"))
        ready = info.get("ready", params.get("ready"))
        if mechanism is None or n is None or ready is None:
            raise ValueError(
                f"benchmark {bench.get('name')!r} lacks mechanism / n_registered / ready; "
                "it was not written by bench/measure/micro/test_wait_cost.py"
            )
        rows.append(
            {
                "mechanism": mechanism,
                "n_registered": int(n),
                "ready": ready,
                "median_us": stats["median"] * US_PER_S,
                "mean_us": stats["mean"] * US_PER_S,
                "stddev_us": stats["stddev"] * US_PER_S,
                "iqr_us": stats["iqr"] * US_PER_S,
                "min_us": stats["min"] * US_PER_S,
                "rounds": int(stats["rounds"]),
            }
        )
    df = pd.DataFrame(rows, columns=list(MICRO_COLUMNS)).astype(MICRO_COLUMNS)
    return df.sort_values(list(MICRO_KEYS)).reset_index(drop=True)


def run_micro(
    out_json_path: str | Path,
    quick: bool,
    *,
    max_time_s: float | None = None,
    keyword: str | None = None,
    timeout_s: float = 600.0,
) -> pd.DataFrame:
    """Run the micro benchmarks in a pytest subprocess; return the tidy table.

    ``quick`` picks the small set of descriptor counts and a short time per
    benchmark (0.2 s; full: 1 s). ``keyword`` is passed to ``pytest -k`` to run
    a subset. The subprocess is waited for, so no process outlives this call.
    """
    out = Path(out_json_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    max_time = max_time_s if max_time_s is not None else (0.2 if quick else 1.0)
    cmd = [
        sys.executable, "-m", "pytest", str(BENCH_MODULE),
        "-q", "-p", "no:cacheprovider", "-o", "addopts=",
        "--benchmark-enable", "--benchmark-only",
        f"--benchmark-json={out}", f"--benchmark-max-time={max_time}",
        "--benchmark-min-rounds=5", "--benchmark-sort=name",
    ]  # fmt: skip
    if keyword:
        cmd += ["-k", keyword]
    env = {**os.environ, "BENCH_MICRO_SET": "quick" if quick else "full"}
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=timeout_s, check=False,
            cwd=BENCH_MODULE.parent,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise MicroBenchmarkError(
            f"micro benchmarks did not finish within {timeout_s:.0f} s; run fewer with quick=True "
            "or a keyword"
        ) from exc
    if proc.returncode != 0 or not out.is_file():
        tail = (proc.stdout + proc.stderr)[-1500:]
        raise MicroBenchmarkError(
            f"micro benchmarks failed (pytest exit {proc.returncode}); run "
            f"`{' '.join(cmd)}` to see why. Output tail:\n{tail}"
        )
    return micro_table_from_json(out)
