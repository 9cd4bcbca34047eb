"""Small-sample t intervals on log values: a cell's typical value and ratios between groups.

Repetitions of a cell are the unit of noise on this machine and there are
3-10 of them, so every interval here is Student's t on log values (noise on a
shared machine is roughly multiplicative: a descheduled repetition is slower by
a factor, not by a fixed amount). No bootstrap: with 3 values a percentile
bootstrap of the median returns the min-max, which covers the median only 75%
of the time.

Each public function returns an estimate that names its ``method``. The cores
(``one_sample_bounds``, ``paired_bounds``, ``welch_bounds``) work on whole
arrays of simulated runs at once, so ``tests/test_analyse_coverage.py``
measures the coverage of exactly the code the verdict runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from bench.analyse.rules import CONFIDENCE, MIN_PAIRS

NAN = float("nan")
METHOD_ONE = "t interval on log values (geometric mean, n-1 df)"
METHOD_PAIRED = "paired t interval on per-repetition log differences (n_pairs-1 df)"
METHOD_WELCH = "Welch t interval on log values (Satterthwaite df)"


def _t(confidence: float, df: np.ndarray | float) -> np.ndarray:
    return np.asarray(stats.t.ppf(0.5 + confidence / 2, df), dtype=float)


def one_sample_bounds(logs: np.ndarray, confidence: float = CONFIDENCE) -> tuple[np.ndarray, ...]:
    """Mean of log values and its t bounds along the last axis (n >= 2)."""
    n = logs.shape[-1]
    mean = logs.mean(axis=-1)
    half = _t(confidence, n - 1) * logs.std(axis=-1, ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


def paired_bounds(diffs: np.ndarray, confidence: float = CONFIDENCE) -> tuple[np.ndarray, ...]:
    """Mean of per-block log differences and its t bounds (n_pairs - 1 df)."""
    return one_sample_bounds(diffs, confidence)


def welch_bounds(
    log_a: np.ndarray, log_b: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, ...]:
    """mean(log a) - mean(log b) with Welch's t bounds along the last axis."""
    diff = log_a.mean(axis=-1) - log_b.mean(axis=-1)
    se, df = welch_se_df(log_a, log_b)
    half = _t(confidence, df) * se
    return diff, diff - half, diff + half


def welch_se_df(log_a: np.ndarray, log_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standard error of mean(log a) - mean(log b) and Satterthwaite's df, last axis."""
    na, nb = log_a.shape[-1], log_b.shape[-1]
    va = log_a.var(axis=-1, ddof=1) / na
    vb = log_b.var(axis=-1, ddof=1) / nb
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    df = np.where(np.isfinite(df), df, na + nb - 2)  # both variances 0: any df, zero width
    return np.sqrt(va + vb), df


@dataclass(frozen=True)
class GeoMean:
    """Geometric mean of a cell's repetitions with its t interval."""

    estimate: float
    ci_low: float
    ci_high: float
    n: int
    method: str = METHOD_ONE
    confidence: float = CONFIDENCE


def geometric_mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> GeoMean:
    """Geometric mean and t interval on logs; positive finite values only; (nan, nan) if n < 2."""
    arr = _positive(values)
    if arr.size == 0:
        return GeoMean(NAN, NAN, NAN, 0, confidence=confidence)
    logs = np.log(arr)
    if arr.size < 2:
        return GeoMean(float(arr[0]), NAN, NAN, 1, confidence=confidence)
    mean, lo, hi = one_sample_bounds(logs, confidence)
    return GeoMean(
        float(np.exp(mean)), float(np.exp(lo)), float(np.exp(hi)), int(arr.size), METHOD_ONE,
        confidence,
    )  # fmt: skip


@dataclass(frozen=True)
class RatioEstimate:
    """Ratio of geometric means ``numerator / denominator`` with its interval and method."""

    ratio: float
    ci_low: float
    ci_high: float
    n_numerator: int
    n_denominator: int
    method: str = ""
    confidence: float = CONFIDENCE
    n_pairs: int = 0
    # The log ratio's standard error and the degrees of freedom of its t
    # interval: what ``bench.analyse.runs`` needs to pool runs.
    df: float = NAN
    log_se: float = NAN

    @property
    def excludes_one(self) -> bool:
        return bool(np.isfinite(self.ci_low) and (self.ci_low > 1 or self.ci_high < 1))

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "ratio": _round(self.ratio),
            "ci_low": _round(self.ci_low),
            "ci_high": _round(self.ci_high),
            "confidence": self.confidence,
            "method": self.method,
            "n_numerator": self.n_numerator,
            "n_denominator": self.n_denominator,
            "n_pairs": self.n_pairs,
            "df": _round(self.df),
            "log_se": _round(self.log_se),
        }


def _round(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}") if np.isfinite(x) else NAN


def _positive(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    return arr[np.isfinite(arr) & (arr > 0)]


def _pairs(
    num: Sequence[float],
    num_blocks: Sequence[object],
    den: Sequence[float],
    den_blocks: Sequence[object],
) -> tuple[np.ndarray, np.ndarray]:
    """Values of both sides in the blocks they share (first value per block), block order."""
    a = {b: v for v, b in zip(num, num_blocks, strict=True) if np.isfinite(v) and v > 0}
    b = {k: v for v, k in zip(den, den_blocks, strict=True) if np.isfinite(v) and v > 0}
    shared = sorted(set(a) & set(b), key=str)
    return np.array([a[k] for k in shared], dtype=float), np.array([b[k] for k in shared])


def welch_log_ratio(
    numerator: Sequence[float], denominator: Sequence[float], confidence: float = CONFIDENCE
) -> RatioEstimate:
    """Ratio of geometric means with Welch's t interval on log values (independent groups)."""
    a, b = _positive(numerator), _positive(denominator)
    if a.size == 0 or b.size == 0:
        return RatioEstimate(NAN, NAN, NAN, int(a.size), int(b.size), METHOD_WELCH, confidence)
    ratio = float(np.exp(np.log(a).mean() - np.log(b).mean()))
    if a.size < 2 or b.size < 2:
        return RatioEstimate(ratio, NAN, NAN, int(a.size), int(b.size), METHOD_WELCH, confidence)
    _, lo, hi = welch_bounds(np.log(a), np.log(b), confidence)
    se, df = welch_se_df(np.log(a), np.log(b))
    return RatioEstimate(
        ratio, float(np.exp(lo)), float(np.exp(hi)), int(a.size), int(b.size), METHOD_WELCH,
        confidence, df=float(df), log_se=float(se),
    )  # fmt: skip


def ratio_interval(
    numerator: Sequence[float],
    denominator: Sequence[float],
    numerator_blocks: Sequence[object] | None = None,
    denominator_blocks: Sequence[object] | None = None,
    confidence: float = CONFIDENCE,
) -> RatioEstimate:
    """Paired by block when both sides share at least ``MIN_PAIRS`` blocks, else Welch."""
    if numerator_blocks is not None and denominator_blocks is not None:
        a, b = _pairs(numerator, numerator_blocks, denominator, denominator_blocks)
        if a.size >= MIN_PAIRS:
            diffs = np.log(a) - np.log(b)
            mean, lo, hi = paired_bounds(diffs, confidence)
            return RatioEstimate(
                float(np.exp(mean)), float(np.exp(lo)), float(np.exp(hi)), int(a.size),
                int(b.size), METHOD_PAIRED, confidence, int(a.size), df=float(a.size - 1),
                log_se=float(diffs.std(ddof=1) / math.sqrt(a.size)),
            )  # fmt: skip
    return welch_log_ratio(numerator, denominator, confidence)


@dataclass(frozen=True)
class CellSides:
    """One cell's two sides of a ratio, with the repetition (block) of each value."""

    numerator: Sequence[float]
    denominator: Sequence[float]
    numerator_blocks: Sequence[object] | None = None
    denominator_blocks: Sequence[object] | None = None


def pooled_ratio(cells: Sequence[CellSides], confidence: float = CONFIDENCE) -> RatioEstimate:
    """Geometric mean over cells of each cell's ratio, with a t interval.

    Paired when every cell pairs on the same blocks (at least ``MIN_PAIRS``):
    the per-block mean over cells of the log differences, t over blocks. Else
    each cell's Welch variance, summed, with Satterthwaite's degrees of freedom.
    ``n_numerator`` / ``n_denominator`` report the fewest values in any cell.
    """
    if not cells:
        return RatioEstimate(NAN, NAN, NAN, 0, 0, "", confidence)
    paired = [_paired_dict(c) for c in cells]
    shared = set.intersection(*(set(p) for p in paired)) if all(paired) else set()
    if len(shared) >= MIN_PAIRS:
        keys = sorted(shared, key=str)
        diffs = np.array([[p[k] for k in keys] for p in paired]).mean(axis=0)
        mean, lo, hi = paired_bounds(diffs, confidence)
        return RatioEstimate(
            float(np.exp(mean)), float(np.exp(lo)), float(np.exp(hi)), len(keys), len(keys),
            f"{METHOD_PAIRED}, mean over {len(cells)} cells per repetition", confidence, len(keys),
            df=float(len(keys) - 1), log_se=float(diffs.std(ddof=1) / math.sqrt(len(keys))),
        )  # fmt: skip
    sides = [(np.log(_positive(c.numerator)), np.log(_positive(c.denominator))) for c in cells]
    n_a, n_b = min(a.size for a, _ in sides), min(b.size for _, b in sides)
    if n_a == 0 or n_b == 0:
        return RatioEstimate(NAN, NAN, NAN, n_a, n_b, METHOD_WELCH, confidence)
    k = len(sides)
    point = sum(a.mean() - b.mean() for a, b in sides) / k
    if n_a < 2 or n_b < 2:
        return RatioEstimate(float(np.exp(point)), NAN, NAN, n_a, n_b, METHOD_WELCH, confidence)
    parts = [(x.var(ddof=1) / x.size / k**2, x.size - 1) for a, b in sides for x in (a, b)]
    var = sum(v for v, _ in parts)
    denom = sum(v**2 / d for v, d in parts)
    df = var**2 / denom if denom > 0 else sum(d for _, d in parts)
    half = float(_t(confidence, df)) * math.sqrt(var)
    return RatioEstimate(
        float(np.exp(point)), float(np.exp(point - half)), float(np.exp(point + half)), n_a, n_b,
        f"{METHOD_WELCH}, mean over {k} cells", confidence, df=float(df), log_se=math.sqrt(var),
    )  # fmt: skip


def _paired_dict(cell: CellSides) -> dict[object, float]:
    if cell.numerator_blocks is None or cell.denominator_blocks is None:
        return {}
    out: dict[object, float] = {}
    num = zip(cell.numerator, cell.numerator_blocks, strict=True)
    den = {k: v for v, k in zip(cell.denominator, cell.denominator_blocks, strict=True)}
    for v, k in num:
        w = den.get(k)
        if k not in out and w is not None and v > 0 and w > 0:
            out[k] = math.log(v) - math.log(w)
    return out
