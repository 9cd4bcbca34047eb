"""Tidy summaries and the statistics the verdict, charts and compare share.

Repetitions of a cell are the unit of noise on this machine, so every interval
here is a bootstrap over repetitions (resampled within each cell, with a fixed
seed so that the same run always gives the same verdict). Medians, not means:
one descheduled repetition on a shared 2-core VM should not move a summary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.store import schema

BOOTSTRAP_SEED = 20040721  # fixed: the same run folder always yields the same intervals
BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95


def usable_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials fit to measure with: status ok and not flagged."""
    if trials.empty:
        return trials
    ok = trials["status"].fillna("failed") == "ok"
    not_flagged = ~trials["flagged"].fillna(False).astype(bool)
    return trials[ok & not_flagged]


def _quantiles(samples: np.ndarray) -> tuple[float, float]:
    alpha = (1 - CONFIDENCE) / 2
    lo, hi = np.quantile(samples, [alpha, 1 - alpha])
    return float(lo), float(hi)


def bootstrap_median_ci(values: Sequence[float], seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the median; (nan, nan) without data."""
    arr = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if arr.size == 0:
        return float("nan"), float("nan")
    if arr.size == 1:
        return float(arr[0]), float(arr[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(BOOTSTRAP_RESAMPLES, arr.size))
    return _quantiles(np.median(arr[idx], axis=1))


@dataclass(frozen=True)
class RatioEstimate:
    """Ratio of medians ``numerator / denominator`` with a bootstrap 95% interval."""

    ratio: float
    ci_low: float
    ci_high: float
    n_numerator: int
    n_denominator: int

    @property
    def excludes_one(self) -> bool:
        return bool(np.isfinite(self.ci_low) and (self.ci_low > 1 or self.ci_high < 1))

    def as_dict(self) -> dict[str, float | int]:
        return {
            "ratio": _round(self.ratio),
            "ci_low": _round(self.ci_low),
            "ci_high": _round(self.ci_high),
            "n_numerator": self.n_numerator,
            "n_denominator": self.n_denominator,
        }


def _round(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}") if np.isfinite(x) else float("nan")


def bootstrap_ratio_of_medians(
    numerator: Sequence[float], denominator: Sequence[float], seed: int = BOOTSTRAP_SEED
) -> RatioEstimate:
    """Resample each side's repetitions independently; interval of median(a)/median(b)."""
    a = np.asarray([v for v in numerator if np.isfinite(v)], dtype=float)
    b = np.asarray([v for v in denominator if np.isfinite(v)], dtype=float)
    nan = float("nan")
    if a.size == 0 or b.size == 0 or np.median(b) == 0:
        return RatioEstimate(nan, nan, nan, int(a.size), int(b.size))
    rng = np.random.default_rng(seed)
    ma = np.median(a[rng.integers(0, a.size, size=(BOOTSTRAP_RESAMPLES, a.size))], axis=1)
    mb = np.median(b[rng.integers(0, b.size, size=(BOOTSTRAP_RESAMPLES, b.size))], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = ma / mb
    ratios = ratios[np.isfinite(ratios)]
    lo, hi = _quantiles(ratios) if ratios.size else (nan, nan)
    return RatioEstimate(float(np.median(a) / np.median(b)), lo, hi, int(a.size), int(b.size))


def welch_log_ratio(
    numerator: Sequence[float], denominator: Sequence[float], confidence: float = CONFIDENCE
) -> RatioEstimate:
    """Ratio of medians with a Welch t interval on log values (ratio of geometric means).

    For 2-5 repetitions a percentile bootstrap interval is too narrow (it can
    only recombine the few values seen), so comparisons of two runs use
    Student/Welch's small-sample interval on log(value), which keeps its 95%
    coverage at n = 3 when run-to-run noise is roughly log-normal.
    """
    from scipy import stats

    a = np.asarray([v for v in numerator if np.isfinite(v) and v > 0], dtype=float)
    b = np.asarray([v for v in denominator if np.isfinite(v) and v > 0], dtype=float)
    nan = float("nan")
    if a.size == 0 or b.size == 0:
        return RatioEstimate(nan, nan, nan, int(a.size), int(b.size))
    ratio = float(np.median(a) / np.median(b))
    if a.size < 2 or b.size < 2:
        return RatioEstimate(ratio, nan, nan, int(a.size), int(b.size))
    la, lb = np.log(a), np.log(b)
    va, vb = la.var(ddof=1) / a.size, lb.var(ddof=1) / b.size
    diff = la.mean() - lb.mean()
    se = math.sqrt(va + vb)
    if se == 0:
        return RatioEstimate(ratio, math.exp(diff), math.exp(diff), int(a.size), int(b.size))
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    t = float(stats.t.ppf(1 - (1 - confidence) / 2, df))
    return RatioEstimate(
        ratio, math.exp(diff - t * se), math.exp(diff + t * se), int(a.size), int(b.size)
    )


def bootstrap_pooled_ratio(
    pairs: Sequence[tuple[Sequence[float], Sequence[float]]], seed: int = BOOTSTRAP_SEED
) -> RatioEstimate:
    """Geometric mean over cells of median(a)/median(b), with a joint bootstrap interval.

    Pooling several cells of one regime (e.g. every all-active connection count)
    narrows the interval compared with judging a single cell on 3 repetitions.
    ``n_numerator`` / ``n_denominator`` report the fewest repetitions in any cell.
    """
    nan = float("nan")
    clean = []
    for num, den in pairs:
        a = np.asarray([v for v in num if np.isfinite(v)], dtype=float)
        b = np.asarray([v for v in den if np.isfinite(v)], dtype=float)
        if a.size and b.size and np.median(a) > 0 and np.median(b) > 0:
            clean.append((a, b))
    if not clean:
        return RatioEstimate(nan, nan, nan, 0, 0)
    rng = np.random.default_rng(seed)
    logs = np.zeros(BOOTSTRAP_RESAMPLES)
    point = 0.0
    for a, b in clean:
        ma = np.median(a[rng.integers(0, a.size, size=(BOOTSTRAP_RESAMPLES, a.size))], axis=1)
        mb = np.median(b[rng.integers(0, b.size, size=(BOOTSTRAP_RESAMPLES, b.size))], axis=1)
        with np.errstate(divide="ignore"):
            logs += np.log(ma) - np.log(mb)
        point += float(np.log(np.median(a)) - np.log(np.median(b)))
    logs /= len(clean)
    finite = logs[np.isfinite(logs)]
    lo, hi = _quantiles(np.exp(finite)) if finite.size else (nan, nan)
    n_a = min(a.size for a, _ in clean)
    n_b = min(b.size for _, b in clean)
    return RatioEstimate(float(np.exp(point / len(clean))), lo, hi, int(n_a), int(n_b))


@dataclass(frozen=True)
class SlopeFit:
    """Least-squares slope of y against x with a bootstrap 95% interval.

    ``rel_increase`` is the projected change over the measured range,
    slope * (x_max - x_min), as a fraction of the median y at the smallest x:
    the yardstick the verdict uses, because it is comparable across metrics
    and backends whatever their units.
    """

    slope: float
    ci_low: float
    ci_high: float
    n_points: int
    n_levels: int
    min_reps_per_level: int
    x_min: float
    x_max: float
    baseline: float
    method: str

    @property
    def span(self) -> float:
        return self.x_max - self.x_min

    def _rel(self, s: float) -> float:
        if not (np.isfinite(s) and np.isfinite(self.baseline)) or self.baseline <= 0:
            return float("nan")
        return s * self.span / self.baseline

    @property
    def rel_increase(self) -> float:
        return self._rel(self.slope)

    @property
    def rel_ci(self) -> tuple[float, float]:
        return self._rel(self.ci_low), self._rel(self.ci_high)

    def as_dict(self) -> dict[str, float | int | str]:
        lo, hi = self.rel_ci
        return {
            "slope": _round(self.slope),
            "slope_ci_low": _round(self.ci_low),
            "slope_ci_high": _round(self.ci_high),
            "n_points": self.n_points,
            "n_levels": self.n_levels,
            "min_reps_per_level": self.min_reps_per_level,
            "x_min": self.x_min,
            "x_max": self.x_max,
            "baseline_at_x_min": _round(self.baseline),
            "projected_rel_increase": _round(self.rel_increase),
            "projected_rel_increase_ci_low": _round(lo),
            "projected_rel_increase_ci_high": _round(hi),
            "method": self.method,
        }


def _ols_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Slopes of many regressions at once: x and y are (resamples, points)."""
    xm = x - x.mean(axis=-1, keepdims=True)
    ym = y - y.mean(axis=-1, keepdims=True)
    sxx = (xm * xm).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (xm * ym).sum(axis=-1) / sxx


def bootstrap_slope(x: Sequence[float], y: Sequence[float], seed: int = BOOTSTRAP_SEED) -> SlopeFit:
    """Slope of y on x; interval by resampling repetitions within each x level.

    Stratifying by x keeps every level in every resample, so the interval
    reflects repetition-to-repetition noise, not the luck of which x were drawn.
    With a single repetition at every level the interval is degenerate (zero
    width); callers must treat ``min_reps_per_level < 2`` as too little data.
    """
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    nan = float("nan")
    levels = np.unique(xa)
    if levels.size < 2:
        return SlopeFit(nan, nan, nan, int(xa.size), int(levels.size), 0, nan, nan, nan, "ols")
    groups = [ya[xa == lv] for lv in levels]
    min_reps = min(g.size for g in groups)
    slope = float(_ols_slopes(xa[None, :], ya[None, :])[0])
    rng = np.random.default_rng(seed)
    xs = np.concatenate([np.full(g.size, lv) for lv, g in zip(levels, groups, strict=True)])
    ys = np.concatenate(
        [g[rng.integers(0, g.size, size=(BOOTSTRAP_RESAMPLES, g.size))] for g in groups], axis=1
    )
    boot = _ols_slopes(np.broadcast_to(xs, ys.shape), ys)
    lo, hi = _quantiles(boot[np.isfinite(boot)])
    baseline = float(np.median(groups[0]))
    return SlopeFit(
        slope,
        lo,
        hi,
        int(xa.size),
        int(levels.size),
        int(min_reps),
        float(levels[0]),
        float(levels[-1]),
        baseline,
        "ols, bootstrap over repetitions within each level",
    )


def parametric_slope(
    x: Sequence[float],
    centre: Sequence[float],
    standard_error: Sequence[float],
    seed: int = BOOTSTRAP_SEED,
) -> SlopeFit:
    """Slope through one summarised value per level (micro benchmarks).

    pytest-benchmark keeps one summary per benchmark, not its repetitions, so
    each level is redrawn from a normal distribution around its median with the
    median's standard error (1.253 * sigma / sqrt(rounds), sigma from the IQR);
    with 3+ levels the interval is widened to cover the residual t interval.
    """
    xa = np.asarray(x, dtype=float)
    ca = np.asarray(centre, dtype=float)
    se = np.nan_to_num(np.asarray(standard_error, dtype=float), nan=0.0)
    keep = np.isfinite(xa) & np.isfinite(ca)
    xa, ca, se = xa[keep], ca[keep], se[keep]
    order = np.argsort(xa)
    xa, ca, se = xa[order], ca[order], se[order]
    nan = float("nan")
    if np.unique(xa).size < 2:
        return SlopeFit(nan, nan, nan, int(xa.size), int(np.unique(xa).size), 1, nan, nan, nan, "")
    slope = float(_ols_slopes(xa[None, :], ca[None, :])[0])
    rng = np.random.default_rng(seed)
    ys = ca + rng.standard_normal((BOOTSTRAP_RESAMPLES, ca.size)) * se
    boot = _ols_slopes(np.broadcast_to(xa, ys.shape), ys)
    lo, hi = _quantiles(boot)
    method = "ols; parametric bootstrap from each benchmark's median and standard error"
    if xa.size >= 3:
        # Each benchmark's own standard error knows nothing of drift between
        # benchmarks (machine load changes over a run), which shows up as scatter
        # around the line. Widen to the classical t interval from the residuals.
        from scipy import stats

        intercept = ca.mean() - slope * xa.mean()
        resid = ca - (intercept + slope * xa)
        sxx = float(((xa - xa.mean()) ** 2).sum())
        se_slope = math.sqrt(float((resid**2).sum()) / (xa.size - 2) / sxx)
        t = float(stats.t.ppf(1 - (1 - CONFIDENCE) / 2, xa.size - 2))
        lo, hi = min(lo, slope - t * se_slope), max(hi, slope + t * se_slope)
        method += ", widened to the residual t interval (between-benchmark scatter)"
    return SlopeFit(
        slope,
        lo,
        hi,
        int(xa.size),
        int(np.unique(xa).size),
        1,
        float(xa[0]),
        float(xa[-1]),
        float(ca[0]),
        method,
    )


def micro_standard_error_us(micro: pd.DataFrame) -> pd.Series:
    """Standard error of each micro benchmark's median, from IQR (or stddev) and rounds."""
    sigma = micro["iqr_us"].astype(float) / 1.349
    sigma = sigma.where(sigma > 0, micro["stddev_us"].astype(float))
    rounds = micro["rounds"].astype(float).clip(lower=1)
    return 1.253 * sigma / np.sqrt(rounds)


def summarise_cells(
    trials: pd.DataFrame,
    metric: str,
    keys: Sequence[str] = schema.CELL_KEYS,
    seed: int = BOOTSTRAP_SEED,
) -> pd.DataFrame:
    """One row per cell: median, min, max and 95% CI of ``metric`` over usable repetitions.

    ``n`` counts usable repetitions, ``n_flagged`` flagged ones, ``n_failed``
    failed ones; a cell with only flagged repetitions is summarised from them
    with ``flagged_only`` True so charts can still draw it (greyed).
    """
    cols = [
        *keys,
        "n",
        "n_flagged",
        "n_failed",
        "flagged_only",
        "median",
        "min",
        "max",
        "ci_low",
        "ci_high",
    ]
    if trials.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for cell, grp in trials.groupby(list(keys), dropna=False, sort=True):
        failed = grp["status"].fillna("failed") != "ok"
        flagged = grp["flagged"].fillna(False).astype(bool) & ~failed
        good = grp[~failed & ~flagged][metric].astype(float).dropna()
        source = good
        flagged_only = False
        if good.empty:
            source = grp[flagged][metric].astype(float).dropna()
            flagged_only = not source.empty
        if source.empty:
            continue
        lo, hi = bootstrap_median_ci(source.to_numpy(), seed)
        rows.append(
            {
                **dict(zip(keys, cell if isinstance(cell, tuple) else (cell,), strict=True)),
                "n": int(good.size),
                "n_flagged": int(flagged.sum()),
                "n_failed": int(failed.sum()),
                "flagged_only": flagged_only,
                "median": float(source.median()),
                "min": float(source.min()),
                "max": float(source.max()),
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    return pd.DataFrame(rows, columns=cols)


def nearest_level(levels: Sequence[float], target: float) -> float | None:
    """The level closest to ``target`` (ties: the smaller one); None if no levels."""
    vals = sorted({float(v) for v in levels if pd.notna(v)})
    if not vals:
        return None
    return min(vals, key=lambda v: (abs(v - target), v))
