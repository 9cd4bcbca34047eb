"""idle-steps' windows as a tidy table, and the growth fit that takes the process as its block.

Each idle-steps trial is one server process measured at every idle count in
turn (``bench.measure.scenarios.idle_steps``); its windows are in the trial's
``step_windows`` column. The fit is claim 3's (``bench.analyse.slopes``) with
one block per process, so the process-to-process spread that makes separate
processes per count disagree cancels, and the window's position within its
process as the linear term (drift while one process runs). The process is the
unit of replication: each contributes one value per count, as the micro
benchmark's fresh processes do.

The wait call's CPU is fitted with two covariates measured in the same window
(``window_covariates``), so its growth is the growth at a fixed batch and machine speed:

- log events per wait call. A call that returns more events costs more, and the
  batch a closed loop settles into is a property of the load's timing, not of
  the descriptor count: an experiment on this 2-vCPU VM (8 c-epoll processes,
  0.45 s windows, 2026-12-06) read c-epoll at 1.1-7 events per call between the
  windows of one process and its wait CPU per call at 0.9-2.9 us with them;
- log of the server's CPU per request outside the wait call. The Python epoll
  server's wait CPU per call moved with its other work, 3.3 against 4.7 us in
  one process from one window to the next (the machine's speed as another
  process on the second CPU makes it): the same windows' other CPU moved with it.

In that experiment the within-process residual spread of log wait CPU per call
fell from 0.28 to 0.07 (c-epoll) and from 0.09 to 0.03 (Python epoll) with
both covariates. An O(N) cost in the wait call moves neither covariate: it is
not in the other CPU, and a Python server's closed loop returns every active
connection on each call whatever its speed. Windows without the covariates
(runs before 2026-12-06) are fitted without them and the method says so.
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
METHOD_STEPS_COVARIATES = METHOD_STEPS.replace(
    "b * position", "b * position + c1 log(events per call) + c2 log(other CPU per request)"
)
NO_COVARIATES = " (no covariates: the windows do not record events per call and requests)"
WINDOW_COLUMNS = (
    "backend", "repetition", "process", "position", "idle_connections",
    metrics.SERVER_WAIT_US_PER_CALL.name, metrics.SERVER_CPU_US_PER_REQ.name,
    metrics.SERVER_BUSY_FRACTION.name, metrics.SERVER_EVENTS_PER_CALL.name,
    metrics.SERVER_WAIT_CALLS.name, metrics.REQUESTS.name,
)  # fmt: skip
# The metric fitted with covariates (``window_covariates``).
COVARIATE_METRIC = metrics.SERVER_WAIT_US_PER_CALL.name


def planned_backends(trials: pd.DataFrame) -> set[str]:
    """Backends the run's plan measured in idle-steps, whatever their trials' status."""
    if trials.empty or "scenario" not in trials.columns:
        return set()
    return set(trials.loc[trials["scenario"] == NAME, "backend"].astype(str))


def step_windows(trials: pd.DataFrame, usable: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per window of every usable idle-steps trial; ``process`` is its trial's index.

    ``usable``: ``usable_trials(trials)`` when the caller has it already."""
    rows = usable if usable is not None else usable_trials(trials)
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
    covariates = window_covariates(mine) if metric == COVARIATE_METRIC else None
    fit = growth_fit(
        mine["idle_connections"].astype(float).to_numpy(),
        mine[metric].astype(float).to_numpy(),
        mine["process"].tolist(),
        mine["position"].astype(float).to_numpy(),
        covariates=covariates,
    )
    if metric != COVARIATE_METRIC:
        return dataclasses.replace(fit, method=METHOD_STEPS)
    method = METHOD_STEPS_COVARIATES if covariates is not None else METHOD_STEPS + NO_COVARIATES
    return dataclasses.replace(fit, method=method)


def window_covariates(windows: pd.DataFrame) -> np.ndarray | None:
    """Log events per call and log other CPU per request per window (rows x 2), or None
    unless every window has both.

    Other CPU per request = server CPU per request - wait CPU per call x wait
    calls per request. All or none: a fit whose covariates depended on which
    windows had them would leave windows out by what they measured.
    """

    def col(m: metrics.Metric) -> np.ndarray:
        return pd.to_numeric(windows.get(m.name), errors="coerce").to_numpy(dtype=float)

    if any(m.name not in windows.columns for m in _COVARIATE_INPUTS):
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        calls_per_req = col(metrics.SERVER_WAIT_CALLS) / col(metrics.REQUESTS)
        wait_per_req = col(metrics.SERVER_WAIT_US_PER_CALL) * calls_per_req
        other = col(metrics.SERVER_CPU_US_PER_REQ) - wait_per_req
        out = np.column_stack([np.log(col(metrics.SERVER_EVENTS_PER_CALL)), np.log(other)])
    return out if out.size and np.isfinite(out).all() else None


_COVARIATE_INPUTS = (
    metrics.SERVER_EVENTS_PER_CALL, metrics.SERVER_WAIT_CALLS, metrics.REQUESTS,
    metrics.SERVER_CPU_US_PER_REQ, metrics.SERVER_WAIT_US_PER_CALL,
)  # fmt: skip


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
