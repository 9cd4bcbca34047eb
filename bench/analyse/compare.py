"""`bench compare A B`: the same cells of two runs side by side, and which differences are real.

A difference counts as *beyond run-to-run noise* when the 95% interval of
the ratio B / A excludes 1. The interval is Welch's t interval on log values
and the ratio shown is the ratio of geometric means, the quantity that
interval is about (``bench.analyse.intervals``); the medians of A and B are
shown beside it. Two runs are independent, so nothing is paired. Not a
bootstrap: with three repetitions a percentile bootstrap can only recombine
the three values seen and is far too narrow (on synthetic same-distribution
runs it called a quarter of the cells different), while a rank test such as
Mann-Whitney cannot reach p < 0.05 at all (its smallest two-sided p for 3 vs
3 is 0.1). Failed trials and trials with a fault are left out, as in the
verdict. Micro benchmarks are compared by Welch's interval over their processes
(each fresh process timed every count once); runs from before the processes are
compared from their medians and standard errors (a normal interval on the log
ratio, since their rounds are not stored). Neither knows of drift between
runs, so a micro difference must also exceed ``MICRO_MIN_CHANGE`` (50%) to
count: two back-to-back quick
runs of the same commit on the 2-vCPU VM differed by up to 45% on single micro
cells (select with 128 descriptors: 12.6 vs 19.1 us), while the O(N) effects
the harness is about are 10x and more.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from bench import metrics
from bench.analyse.intervals import METHOD_WELCH, welch_log_ratio
from bench.analyse.rules import CONFIDENCE
from bench.analyse.stats import micro_standard_error_us, usable_trials
from bench.measure.scenarios import micro
from bench.store import schema
from bench.store.results import RunData
from bench.tables.micro import PROCESS

# The metrics the catalogue marks ``compared`` (bench.metrics), plugins' included.
COMPARED_METRICS = metrics.compared()
MICRO_MIN_CHANGE = 0.50
COMPARE_COLUMNS = (
    "table", *schema.CELL_KEYS, "metric", "n_a", "n_b", "median_a", "median_b",
    "ratio_b_over_a", "ci_low", "ci_high", "ci_method", "beyond_noise",
)  # fmt: skip
MICRO_METHOD = "normal interval on log(B/A) from each benchmark's median and standard error"
MICRO_PROCESS_METHOD = f"{METHOD_WELCH}, one value per micro benchmark process"


def _cell_key(df: pd.DataFrame) -> pd.Series:
    return df[list(schema.CELL_KEYS)].astype("string").fillna("").agg("|".join, axis=1)


def _compare_trials(a: pd.DataFrame, b: pd.DataFrame) -> list[dict[str, object]]:
    ua, ub = usable_trials(a), usable_trials(b)
    if ua.empty or ub.empty:
        return []
    ka, kb = _cell_key(ua), _cell_key(ub)
    rows = []
    for key in sorted(set(ka) & set(kb)):
        ca, cb = ua[ka == key], ub[kb == key]
        cell = {k: ca.iloc[0][k] for k in schema.CELL_KEYS}
        for metric in COMPARED_METRICS:
            if metric not in ca.columns or metric not in cb.columns:
                continue
            va = ca[metric].astype(float).dropna().to_numpy()
            vb = cb[metric].astype(float).dropna().to_numpy()
            if va.size == 0 or vb.size == 0:
                continue
            est = welch_log_ratio(vb, va)
            rows.append(
                {
                    "table": "trials", **cell, "metric": metric,
                    "n_a": int(va.size), "n_b": int(vb.size),
                    "median_a": float(np.median(va)), "median_b": float(np.median(vb)),
                    "ratio_b_over_a": est.ratio, "ci_low": est.ci_low, "ci_high": est.ci_high,
                    "ci_method": est.method,
                    "beyond_noise": est.excludes_one,
                }
            )  # fmt: skip
    return rows


def _micro_row(key: tuple, ma: float, mb: float, n_a: int, n_b: int) -> dict[str, object]:
    operation, mechanism, n_registered, ready = key
    return {
        "table": "micro", "scenario": micro.NAME, "backend": mechanism, "protocol": "",
        "mode": f"{ready} ready", "idle_connections": int(n_registered),
        "metric": f"{operation}_median_us", "n_a": n_a, "n_b": n_b, "median_a": ma,
        "median_b": mb,
    }  # fmt: skip


def _beyond(ratio: float, lo: float, hi: float) -> bool:
    return bool((lo > 1 or hi < 1) and abs(math.log(ratio)) > math.log1p(MICRO_MIN_CHANGE))


def _compare_micro_processes(a: pd.DataFrame, b: pd.DataFrame) -> list[dict[str, object]]:
    """Per benchmark: Welch's t interval on log values over the processes of A and of B."""
    keys = list(schema.MICRO_KEYS)
    va = a.groupby(keys)["median_us"].apply(lambda v: v.astype(float).to_numpy())
    vb = b.groupby(keys)["median_us"].apply(lambda v: v.astype(float).to_numpy())
    rows = []
    for key in sorted(set(va.index) & set(vb.index)):
        xa, xb = va[key], vb[key]
        est = welch_log_ratio(xb, xa)
        if not math.isfinite(est.ratio):
            continue
        rows.append(
            {
                **_micro_row(key, float(np.median(xa)), float(np.median(xb)), xa.size, xb.size),
                "ratio_b_over_a": est.ratio, "ci_low": est.ci_low, "ci_high": est.ci_high,
                "ci_method": MICRO_PROCESS_METHOD,
                "beyond_noise": _beyond(est.ratio, est.ci_low, est.ci_high),
            }
        )  # fmt: skip
    return rows


def _compare_micro(a: pd.DataFrame, b: pd.DataFrame) -> list[dict[str, object]]:
    if a.empty or b.empty:
        return []
    # A row without an operation (a table from before the column) is a wait call.
    a, b = (t.assign(operation=t["operation"].fillna("wait")) for t in (a, b))
    if _per_process(a) and _per_process(b):
        return _compare_micro_processes(a, b)
    # A run from before the processes on either side: one row per benchmark and side
    # (the median of a per-process side's processes, its spread as the standard error).
    a, b = _one_row_per_benchmark(a), _one_row_per_benchmark(b)
    keys = list(schema.MICRO_KEYS)
    merged = a.assign(se=micro_standard_error_us(a)).merge(
        b.assign(se=micro_standard_error_us(b)), on=keys, suffixes=("_a", "_b")
    )
    z = float(stats.norm.ppf(0.5 + CONFIDENCE / 2))
    rows = []
    for _, r in merged.iterrows():
        ma, mb = float(r["median_us_a"]), float(r["median_us_b"])
        if not (ma > 0 and mb > 0):
            continue
        sa = float(r["se_a"]) if math.isfinite(float(r["se_a"])) else 0.0
        sb = float(r["se_b"]) if math.isfinite(float(r["se_b"])) else 0.0
        half = z * math.hypot(sa / ma, sb / mb)  # delta method on log(mb / ma)
        lo, hi = mb / ma * math.exp(-half), mb / ma * math.exp(half)
        key = tuple(r[k] for k in keys)
        rows.append(
            {
                **_micro_row(key, ma, mb, int(r["rounds_a"]), int(r["rounds_b"])),
                "ratio_b_over_a": mb / ma, "ci_low": float(lo), "ci_high": float(hi),
                "ci_method": MICRO_METHOD, "beyond_noise": _beyond(mb / ma, lo, hi),
            }
        )  # fmt: skip
    return rows


def _per_process(df: pd.DataFrame) -> bool:
    return PROCESS in df.columns and bool(df[PROCESS].notna().any())


def _one_row_per_benchmark(df: pd.DataFrame) -> pd.DataFrame:
    """A per-process table as one row per benchmark: the processes' median, their spread."""
    if not _per_process(df):
        return df
    keys = list(schema.MICRO_KEYS)
    grouped = df.groupby(keys)["median_us"]
    out = grouped.median().rename("median_us").to_frame()
    # The standard error of the median from P processes (1.253 sigma / sqrt(P)), written as
    # micro_standard_error_us reads it: stddev with no IQR, P as the rounds.
    out["stddev_us"] = grouped.std(ddof=1).fillna(0.0)
    out["iqr_us"] = 0.0
    out["rounds"] = grouped.size()
    return out.reset_index()


def compare_runs(a: RunData, b: RunData) -> pd.DataFrame:
    """One row per (cell, metric) present in both runs: medians, B/A ratio, CI, beyond_noise."""
    rows = _compare_trials(a.trials, b.trials) + _compare_micro(a.micro, b.micro)
    df = pd.DataFrame(rows, columns=list(COMPARE_COLUMNS))
    df.attrs["run_a"] = a.run_id
    df.attrs["run_b"] = b.run_id
    return df


def format_compare(df: pd.DataFrame, only_beyond_noise: bool = False, max_rows: int = 200) -> str:
    """Plain-text table; differences beyond noise are marked with '*'."""
    head = f"Run A: {df.attrs.get('run_a', '?')}   Run B: {df.attrs.get('run_b', '?')}"
    if df.empty:
        return (
            f"{head}\nNo cells in common: the runs measured different scenarios, backends or "
            "connection counts (compare runs of the same preset)."
        )
    shown = df[df["beyond_noise"]] if only_beyond_noise else df
    if shown.empty:
        return f"{head}\nNo difference beyond run-to-run noise in {len(df)} comparisons."
    out = pd.DataFrame(
        {
            "scenario": shown["scenario"],
            "backend": shown["backend"],
            "mode": shown["mode"].fillna(""),
            "idle": shown["idle_connections"].astype("string").fillna(""),
            "active": shown["active_connections"].astype("string").fillna(""),
            "metric": shown["metric"],
            "A": shown["median_a"].map(lambda v: f"{v:.4g}"),
            "B": shown["median_b"].map(lambda v: f"{v:.4g}"),
            "B/A": shown["ratio_b_over_a"].map(lambda v: f"{v:.3f}"),
            "95% CI": [
                f"[{lo:.3f}, {hi:.3f}]"
                for lo, hi in zip(shown["ci_low"], shown["ci_high"], strict=True)
            ],
            "": shown["beyond_noise"].map(lambda v: "*" if v else ""),
        }
    )
    n_beyond = int(df["beyond_noise"].sum())
    text = out.head(max_rows).to_string(index=False)
    more = f"\n... {len(out) - max_rows} more rows" if len(out) > max_rows else ""
    return (
        f"{head}\n{text}{more}\n* beyond run-to-run noise (the 95% interval of B/A excludes 1; "
        "B/A is the ratio of geometric means; trials: Welch t interval on log values; micro: "
        f"{MICRO_PROCESS_METHOD} (older runs: {MICRO_METHOD}), and a change of at least "
        f"{MICRO_MIN_CHANGE:.0%}): "
        f"{n_beyond} of {len(df)} comparisons"
    )
