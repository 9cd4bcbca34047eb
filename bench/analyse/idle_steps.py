"""idle-steps' windows as a tidy table, and the growth fit that takes the process as its block.

Each idle-steps trial is one server process measured at every idle count in
turn (``bench.measure.scenarios.idle_steps``); its windows are in the trial's
``step_windows`` column. The fit is claim 3's (``bench.analyse.slopes``) with
one block per process, so the process-to-process spread that makes separate
processes per count disagree cancels, and the window's position within its
process as the linear term (drift while one process runs). The process is the
unit of replication: each contributes one value per count, as the micro
benchmark's fresh processes do.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd

from bench import metrics
from bench.analyse.slopes import METHOD_BLOCKS, SlopeFit, growth_fit
from bench.analyse.stats import usable_trials
from bench.measure.scenarios.idle_steps import NAME, STEPS_COLUMN

METHOD_STEPS = METHOD_BLOCKS.replace(
    "one block per repetition", "one block per server process (idle-steps)"
).replace("log(cost) = block", "log(cost) = block + b * position")
WINDOW_COLUMNS = (
    "backend", "repetition", "process", "position", "idle_connections",
    metrics.SERVER_WAIT_US_PER_CALL.name, metrics.SERVER_CPU_US_PER_REQ.name,
    metrics.SERVER_BUSY_FRACTION.name,
)  # fmt: skip


def planned_backends(trials: pd.DataFrame) -> set[str]:
    """Backends the run's plan measured in idle-steps, whatever their trials' status."""
    if trials.empty or "scenario" not in trials.columns:
        return set()
    return set(trials.loc[trials["scenario"] == NAME, "backend"].astype(str))


def step_windows(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per window of every usable idle-steps trial; ``process`` is its trial's index."""
    rows = usable_trials(trials)
    if rows.empty or STEPS_COLUMN not in rows.columns:
        return pd.DataFrame(columns=list(WINDOW_COLUMNS))
    rows = rows[rows["scenario"] == NAME]
    out = []
    for _, trial in rows.iterrows():
        text = trial[STEPS_COLUMN]
        if not isinstance(text, str) or not text:
            continue
        for w in json.loads(text):
            out.append(
                {
                    "backend": str(trial["backend"]),
                    "repetition": trial["repetition"],
                    "process": int(trial["order_index"]),
                    **{k: w.get(k) for k in WINDOW_COLUMNS[3:]},
                }
            )
    return pd.DataFrame(out, columns=list(WINDOW_COLUMNS))


def steps_fit(windows: pd.DataFrame, backend: str, metric: str) -> SlopeFit | None:
    """The growth of ``metric`` over idle counts for one backend, one block per process."""
    mine = windows[(windows["backend"] == backend) & windows[metric].notna()]
    if mine.empty:
        return None
    fit = growth_fit(
        mine["idle_connections"].astype(float).to_numpy(),
        mine[metric].astype(float).to_numpy(),
        mine["process"].tolist(),
        mine["position"].astype(float).to_numpy(),
    )
    return dataclasses.replace(fit, method=METHOD_STEPS)


def process_ratios(windows: pd.DataFrame, backend: str, metric: str) -> list[float]:
    """Each process's value at its largest count / at its smallest (shown beside the fit)."""
    values = pd.to_numeric(windows[metric], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    mine = (windows["backend"].astype(object).to_numpy() == backend) & ~np.isnan(values)
    # numpy per process, not a groupby of frames: the false-call tests run this 2,000 times.
    process = windows["process"].to_numpy()[mine]
    counts = windows["idle_connections"].to_numpy(dtype=float)[mine]
    values = values[mine]
    out = []
    for p in np.unique(process):
        at = process == p
        n, v = counts[at], values[at]
        lo, hi = v[np.argmax(n == n.min())], v[np.argmax(n == n.max())]
        if lo > 0:
            out.append(float(np.round(float(hi) / float(lo), 4)))
    return out
