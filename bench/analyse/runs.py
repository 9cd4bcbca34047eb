"""Pool one cell's ratio over several runs, the run as a random effect.

Runs on one machine disagree by more than their within-run intervals (issue
16: c-select's idle-heavy ratio 10.4x [8.75, 12.3] in one run against 6.3-8.8x
in five others), so the runs are not repetitions of one experiment with a
common truth: each run has its own truth around a mean, spread by ``tau``.
Each run contributes its log ratio and standard error (``RatioEstimate.log_se``);
statsmodels' ``combine_effects`` estimates ``tau`` (Paule-Mandel, iterated) and
the random-effects mean. The interval is Hartung-Knapp-Sidik-Jonkman's (t on
k - 1 df with the weighted residual scale), its variance never below the
plain random-effects variance. Measured on 2,000 simulated sets of runs
(within-run standard errors 0.04-0.12 known from 12 df, tau 0, 0.1 or 0.3):
DerSimonian-Laird's normal interval covered 72-87% with 5 runs and 77-91%
with 8; this one 95-99% and 95-98% (``tests/test_analyse_runs.py``). The
floor matters when the runs happen to agree: the HKSJ scale is then below 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects

from bench.analyse.rules import CONFIDENCE

NAN = float("nan")
METHOD_RUNS = (
    "random-effects pool over runs (statsmodels combine_effects, Paule-Mandel tau), "
    "Hartung-Knapp t interval on k-1 df, variance floored at the random-effects variance"
)


@dataclass(frozen=True)
class PooledRuns:
    """A ratio pooled over runs, its interval, and the spread between runs."""

    ratio: float
    ci_low: float
    ci_high: float
    tau: float  # between-run standard deviation of the log ratio
    run_min: float
    run_max: float
    n_runs: int
    confidence: float = CONFIDENCE
    method: str = METHOD_RUNS

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "ratio": self.ratio,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "tau": self.tau,
            "run_min": self.run_min,
            "run_max": self.run_max,
            "n_runs": self.n_runs,
            "confidence": self.confidence,
            "method": self.method,
        }


def pool_runs(
    log_ratios: Sequence[float], log_ses: Sequence[float], confidence: float = CONFIDENCE
) -> PooledRuns:
    """The runs' log ratios (with standard errors) pooled; runs without a finite pair left out."""
    y = np.asarray(log_ratios, dtype=float)
    se = np.asarray(log_ses, dtype=float)
    keep = np.isfinite(y) & np.isfinite(se) & (se > 0)
    y, se = y[keep], se[keep]
    k = int(y.size)
    if k == 0:
        return PooledRuns(NAN, NAN, NAN, NAN, NAN, NAN, 0, confidence)
    spread = float(np.exp(y.min())), float(np.exp(y.max()))
    if k < 2:
        return PooledRuns(float(np.exp(y[0])), NAN, NAN, NAN, *spread, k, confidence)
    res = combine_effects(y, se**2, method_re="iterated")
    var = max(float(res.var_hksj_re), float(res.var_eff_w_re))
    half = float(stats.t.ppf(0.5 + confidence / 2, k - 1)) * np.sqrt(var)
    mean = float(res.mean_effect_re)
    return PooledRuns(
        float(np.exp(mean)), float(np.exp(mean - half)), float(np.exp(mean + half)),
        float(np.sqrt(max(float(res.tau2), 0.0))), *spread, k, confidence,
    )  # fmt: skip


def growth_log_se(fit: Mapping[str, Any], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """A run's growth fit as (log(1 + growth), its standard error) from its own interval.

    The fit's interval is a profile t interval on ``df`` degrees of freedom; its
    half-width on the log scale over the t quantile is the standard error the pool
    weighs the run by. A fit without a finite two-sided interval gives NaNs (left out).
    """
    g = fit.get("projected_rel_increase")
    lo, hi = fit.get("projected_rel_increase_ci_low"), fit.get("projected_rel_increase_ci_high")
    df = fit.get("df")
    values = (g, lo, hi, df)
    if not all(isinstance(v, int | float) and np.isfinite(v) for v in values) or min(g, lo) <= -1:
        return NAN, NAN
    t = float(stats.t.ppf(0.5 + confidence / 2, df)) if df and df > 0 else NAN
    return float(np.log1p(g)), float((np.log1p(hi) - np.log1p(lo)) / (2 * t))


def pool_growth(fits: Sequence[Mapping[str, Any]], confidence: float = CONFIDENCE) -> PooledRuns:
    """Runs' growth fits of one backend and metric pooled (``ratio`` is 1 + growth)."""
    pairs = [growth_log_se(f, confidence) for f in fits]
    return pool_runs([p[0] for p in pairs], [p[1] for p in pairs], confidence)
