"""Tidy summaries the verdict, charts, report and compare share.

Which trials count (``usable_trials``), one row per cell (``summarise_cells``:
median, min, max and the geometric mean's t interval on log values), the
standard error of a micro benchmark's median, and the nearest measured level.
The interval methods are in ``bench.analyse.intervals`` (groups and ratios) and
``bench.analyse.slopes`` (growth against descriptors).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.analyse.flags import fault_mask, send_lag_material
from bench.analyse.intervals import METHOD_ONE, geometric_mean_interval
from bench.analyse.rules import CONFIDENCE
from bench.analyse.slopes import SlopeFit
from bench.store import schema
from bench.tables import TrialStatus

__all__ = [
    "CONFIDENCE",
    "SlopeFit",
    "excluded_mask",
    "micro_standard_error_us",
    "nearest_level",
    "summarise_cells",
    "usable_latency_trials",
    "usable_trials",
]


def excluded_mask(trials: pd.DataFrame) -> pd.Series:
    """Trials that ran but are left out for a fault (``RULES["faults"]``): flagged or steal.

    Never for their outcome: a client-bound trial stays (``RULES["client_bound"]``).
    """
    return fault_mask(trials)


def usable_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials fit to measure with: status ok and no fault (not flagged, steal in bounds)."""
    if trials.empty:
        return trials
    ok = trials["status"].fillna(TrialStatus.FAILED) == TrialStatus.OK
    return trials[ok & ~excluded_mask(trials)]


def usable_latency_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials whose latency percentiles are fit to show: usable, and no material send lag."""
    usable = usable_trials(trials)
    return usable[~send_lag_material(usable)]


def micro_standard_error_us(micro: pd.DataFrame) -> pd.Series:
    """Standard error of each micro benchmark's median, from IQR (or stddev) and rounds."""
    sigma = micro["iqr_us"].astype(float) / 1.349
    sigma = sigma.where(sigma > 0, micro["stddev_us"].astype(float))
    rounds = micro["rounds"].astype(float).clip(lower=1)
    return 1.253 * sigma / np.sqrt(rounds)


SUMMARY_COLUMNS = (
    "n", "n_flagged", "n_failed", "flagged_only", "median", "min", "max", "geo_mean", "ci_low",
    "ci_high", "ci_method",
)  # fmt: skip


def summarise_cells(
    trials: pd.DataFrame, metric: str, keys: Sequence[str] = schema.CELL_KEYS
) -> pd.DataFrame:
    """One row per cell: median, min, max, geometric mean and its 95% t interval on logs.

    ``n`` counts usable repetitions, ``n_flagged`` the ones left out
    (``excluded_mask``), ``n_failed`` failed ones; a cell with only flagged repetitions is
    summarised from them with ``flagged_only`` True so charts can still draw it
    (greyed). ``ci_low`` / ``ci_high`` bound the geometric mean (``ci_method``);
    they are empty with fewer than 2 positive values.
    """
    cols = [*keys, *SUMMARY_COLUMNS]
    if trials.empty:
        return pd.DataFrame(columns=cols)
    excluded = excluded_mask(trials)
    rows = []
    for cell, grp in trials.groupby(list(keys), dropna=False, sort=True):
        failed = grp["status"].fillna(TrialStatus.FAILED) != TrialStatus.OK
        flagged = excluded.loc[grp.index] & ~failed
        good = grp[~failed & ~flagged][metric].astype(float).dropna()
        source = good
        flagged_only = False
        if good.empty:
            source = grp[flagged][metric].astype(float).dropna()
            flagged_only = not source.empty
        if source.empty:
            continue
        geo = geometric_mean_interval(source.to_numpy())
        rows.append(
            {
                **dict(zip(keys, cell if isinstance(cell, tuple) else (cell,), strict=True)),
                "n": int(good.size), "n_flagged": int(flagged.sum()),
                "n_failed": int(failed.sum()), "flagged_only": flagged_only,
                "median": float(source.median()), "min": float(source.min()),
                "max": float(source.max()), "geo_mean": geo.estimate, "ci_low": geo.ci_low,
                "ci_high": geo.ci_high, "ci_method": METHOD_ONE,
            }
        )  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def nearest_level(levels: Sequence[float], target: float) -> float | None:
    """The level closest to ``target`` (ties: the smaller one); None if no levels."""
    vals = sorted({float(v) for v in levels if pd.notna(v)})
    if not vals:
        return None
    return min(vals, key=lambda v: (abs(v - target), v))
