"""Micro benchmarks of the readiness calls, run through pytest-benchmark, and their tidy table.

``run_micro`` runs the modules of ``BENCH_MODULES`` in a pytest subprocess with
``--benchmark-json`` and converts that JSON (``micro_table_from_json``) into the
``micro.csv`` columns of ``MICRO_COLUMNS`` (microseconds, per call). One row per
benchmark and ``operation``:

- ``wait`` (``test_wait_cost.py``): one wait call, timeout 0, ``ready`` "one" or "all"; the
  counts of a mechanism timed in interleaved blocks, ``rounds`` is the number of blocks;
- ``register``, ``modify``, ``unregister`` and ``modify+wait`` (``test_ctl_cost.py``),
  ``ready`` "none": one call of the event loop's adapter against N registered (timed in
  batches, divided by the batch), and one modify followed by one wait call;
- ``wake`` and ``blocking-wait-cpu`` (``test_wake_cost.py``), ``ready`` "woken": a blocking
  wait on N idle descriptors woken by another thread's write (wall time from the write to
  the return; the waiter's CPU time for the call).

A row without an ``operation`` (a run from before these existed) is a ``wait``; rows of
the other operations never have ``ready`` "one" or "all", so a reader that filters on
``ready`` alone still sees only the wait calls.
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
    "operation": "string",
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
MICRO_KEYS = ("operation", "mechanism", "n_registered", "ready")
OPERATIONS = (
    "wait", "register", "modify", "unregister", "modify+wait", "wake", "blocking-wait-cpu",
)  # fmt: skip

BENCH_MODULE = Path(__file__).with_name("test_wait_cost.py")
BENCH_MODULES = (
    BENCH_MODULE,
    Path(__file__).with_name("test_ctl_cost.py"),
    Path(__file__).with_name("test_wake_cost.py"),
)
# Micro sets (BENCH_MICRO_SET): "quick" times the wait calls only, "full" (standard and
# full presets) adds the register/modify/unregister and wake cases, "tiny" (the test
# suite) has the quick wait cases and one count of every other case.
SETS = ("quick", "full", "tiny")
US_PER_S = 1e6


class MicroBenchmarkError(RuntimeError):
    """The micro benchmark subprocess failed or wrote no JSON."""


def _row(
    info: dict[str, Any], op: str, ready: str, stats: dict[str, Any], scale: float,
    n_registered: int | None = None,
) -> dict:  # fmt: skip
    return {
        "operation": op,
        "mechanism": info["mechanism"],
        "n_registered": int(info["n_registered"] if n_registered is None else n_registered),
        "ready": ready,
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
    are divided by it).
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
                "it was not written by bench/measure/micro/test_wait_cost.py (or its siblings)"
            )
        if own_rows:
            rows += [
                _row(info, r["operation"], r["ready"], r["stats_us"], 1.0, r.get("n_registered"))
                for r in own_rows
            ]
            continue
        scale = US_PER_S / float(info.get("batch") or 1)
        rows.append(_row(info, info.get("operation", "wait"), info["ready"], bench["stats"], scale))
    df = pd.DataFrame(rows, columns=list(MICRO_COLUMNS)).astype(MICRO_COLUMNS)
    return df.sort_values(list(MICRO_KEYS)).reset_index(drop=True)


def run_micro(
    out_json_path: str | Path,
    quick: bool,
    *,
    set_name: str | None = None,
    max_time_s: float | None = None,
    keyword: str | None = None,
    timeout_s: float = 600.0,
) -> pd.DataFrame:
    """Run the micro benchmarks in a pytest subprocess; return the tidy table.

    ``quick`` picks the small set of descriptor counts and a short time per
    benchmark (0.2 s; full: 1 s); ``set_name`` (one of ``SETS``) overrides the
    set it picks. ``keyword`` is passed to ``pytest -k`` to run a subset. The
    subprocess is waited for, so no process outlives this call.
    """
    out = Path(out_json_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    max_time = max_time_s if max_time_s is not None else (0.2 if quick else 1.0)
    cmd = [
        sys.executable, "-m", "pytest", *(str(m) for m in BENCH_MODULES),
        "-q", "-p", "no:cacheprovider", "-o", "addopts=",
        "--benchmark-enable", "--benchmark-only",
        f"--benchmark-json={out}", f"--benchmark-max-time={max_time}",
        "--benchmark-min-rounds=5", "--benchmark-sort=name",
    ]  # fmt: skip
    if keyword:
        cmd += ["-k", keyword]
    if set_name is not None and set_name not in SETS:
        raise ValueError(f"micro set {set_name!r} is unknown; use one of {SETS}")
    chosen = set_name or ("quick" if quick else "full")
    env = {**os.environ, "BENCH_MICRO_SET": chosen}
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
