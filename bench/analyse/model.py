"""Cell ratios from one linear model on log values, pooled over the cells of a run.

For one family, one scenario, one loop mode and one metric, and the two
backends a ratio compares, the model fitted by ordinary least squares
(statsmodels) is::

    log(y) = mu[cell, backend] + repetition (fixed) + beta * position + e

``position`` is the trial's index within its repetition
(``position_in_repetition``; the run permutes the cells and the backends of a
cell at random in every repetition), so a drift within a repetition is
estimated rather than left to confound the descriptor count; older runs did
not record it and then the model has no position term and says so. The ratio
in a cell is the contrast ``mu[cell, a] - mu[cell, b]`` (several cells: the
mean of their contrasts) with Student's t on the residual degrees of freedom:
with 3 repetitions and 4 cells that is about 13 df instead of the 2 of a
paired t within one cell.

Why these choices, measured by ``tests/test_analyse_coverage.py`` (2,000
simulated runs per case; 3 and 5 repetitions, 10-40% log-normal noise, the
comparator's noise twice epoll's, a repetition effect, a +-15% drift across a
repetition, 10% outliers at x1.6, most of them dropped as the busy-fraction
rule drops slow trials):

- The two backends compared, not every backend of the family: one variance for
  all backends gives a quiet pair the noise of a noisy third backend and a noisy
  pair too little (select at three times epoll's noise, poll as quiet as epoll, 3
  repetitions: 90% coverage of epoll vs select with one variance for all three
  backends, 93.5-94% with the pair's own; in the other cases the pair's covers
  94.5-95%). Since 2026-12-06 the contrast's standard error is HC3
  (``COVARIANCE``) instead of one residual variance pooled over the sweep's
  cells, which gave a noisy cell the quiet cells' variance.
- Fixed repetition effects, not a random effect (statsmodels' MixedLM): every
  backend is measured in every repetition, so the contrast is within
  repetitions and fixed and random effects give the same estimate; with 3
  repetitions MixedLM's REML estimate of the repetition variance is often on
  the boundary (convergence warnings) and buys nothing for a within-repetition
  contrast.
- A linear position term: a linear drift is removed exactly; a drift of any
  other shape is, under the random order, noise that the residual variance
  carries (a step halfway through a repetition still covers, see the tests).

When the model cannot be fitted (too few rows for ``MIN_MODEL_DF`` residual
degrees of freedom, a side with no value in the cell, a design without full
rank) the estimate falls back to today's paired (or Welch) t interval of
``bench.analyse.intervals`` and its method says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from bench.analyse.intervals import CellSides, RatioEstimate, pooled_ratio, ratio_interval
from bench.analyse.rules import CONFIDENCE, MIN_MODEL_DF

NAN = float("nan")
POSITION = "position_in_repetition"
# Heteroscedasticity-consistent standard errors (HC3, statsmodels), since 2026-12-06:
# with one residual variance pooled over the sweep's cells, a noisy cell borrowed the
# quiet cells' variance, and A/A simulations (tests/test_false_call_rates.py, 1,000
# runs, 10-30% noise drawn per cell) called a judged comparison better or worse in
# 3.7-5.0% of runs against 1.8-2.7% with HC3 (RULES['history']).
COVARIANCE = "HC3"
METHOD_MODEL = (
    "linear-model t interval on log values (OLS, statsmodels): log y = mean per cell and "
    "backend + repetition (fixed){position} + e, fitted to the {pair} over {cells} cells, "
    "HC3 (heteroscedasticity-consistent) standard error; {df} residual df"
)
WITH_POSITION = " + position in repetition (linear)"
WITHOUT_POSITION = " (no position term: the run recorded no position_in_repetition)"


@dataclass(frozen=True)
class LogTrials:
    """One metric's trials of a sweep: value, cell, backend, repetition and position."""

    values: np.ndarray
    cells: np.ndarray
    backends: np.ndarray
    repetitions: np.ndarray
    positions: np.ndarray | None = None

    @classmethod
    def from_rows(cls, rows: pd.DataFrame, metric: str, cell_column: str) -> LogTrials:
        """The rows' positive finite values of ``metric``; cells by ``cell_column``."""
        values = pd.to_numeric(rows[metric], errors="coerce").to_numpy(dtype=float)
        keep = np.isfinite(values) & (values > 0)
        positions = None
        if POSITION in rows.columns:
            pos = pd.to_numeric(rows[POSITION], errors="coerce").to_numpy(dtype=float)[keep]
            positions = pos if np.isfinite(pos).all() else None
        return cls(
            values=values[keep],
            cells=rows[cell_column].astype(float).to_numpy()[keep],
            backends=rows["backend"].astype(str).to_numpy()[keep],
            repetitions=rows["repetition"].astype(str).to_numpy()[keep],
            positions=positions,
        )

    def subset(self, keep: np.ndarray) -> LogTrials:
        pos = None if self.positions is None else self.positions[keep]
        return LogTrials(
            self.values[keep], self.cells[keep], self.backends[keep], self.repetitions[keep], pos
        )


@dataclass(frozen=True)
class Contrast:
    """A contrast of the model on the log scale, its standard error and residual df."""

    estimate: float
    se: float
    df: int
    method: str

    def bounds(self, confidence: float) -> tuple[float, float]:
        half = float(stats.t.ppf(0.5 + confidence / 2, self.df)) * self.se
        return self.estimate - half, self.estimate + half


def design(trials: LogTrials, use_position: bool) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """The model matrix: one column per (cell, backend) present, repetitions, position."""
    keys = sorted({(c, b) for c, b in zip(trials.cells, trials.backends, strict=True)}, key=str)
    index = {k: i for i, k in enumerate(keys)}
    n = trials.values.size
    mu = np.zeros((n, len(keys)))
    rows = [index[(c, b)] for c, b in zip(trials.cells, trials.backends, strict=True)]
    mu[np.arange(n), rows] = 1.0
    reps = sorted(set(trials.repetitions), key=str)
    rep = (trials.repetitions[:, None] == np.array(reps[1:], dtype=object)[None, :]).astype(float)
    parts = [mu, rep]
    if use_position and trials.positions is not None:
        parts.append((trials.positions - trials.positions.mean())[:, None])
    return np.hstack(parts), keys


def fit_contrast(trials: LogTrials, weights: dict[tuple[float, str], float]) -> Contrast | str:
    """The contrast ``sum w * mu[cell, backend]`` with its standard error, or why not."""
    missing = [k for k in weights if k not in set(zip(trials.cells, trials.backends, strict=True))]
    if missing:
        return f"no value for {missing[0][1]} at {missing[0][0]:g}"
    has_position = trials.positions is not None and np.ptp(trials.positions) > 0
    for use_position in (True, False) if has_position else (False,):
        x, keys = design(trials, use_position)
        df = x.shape[0] - x.shape[1]
        if df < MIN_MODEL_DF:
            return f"{df} residual df < {MIN_MODEL_DF}"
        with np.errstate(divide="ignore", invalid="ignore"):
            fit = sm.OLS(np.log(trials.values), x).fit(cov_type=COVARIANCE)
        if fit.model.rank == x.shape[1]:
            break
    else:
        return "the design has no full rank"
    c = np.zeros(x.shape[1])
    for key, w in weights.items():
        c[keys.index(key)] = w
    pair = " and ".join(sorted({b for _, b in weights}))
    method = METHOD_MODEL.format(
        position=WITH_POSITION if use_position else WITHOUT_POSITION,
        pair=pair,
        cells=len({cell for cell, _ in zip(trials.cells, trials.backends, strict=True)}),
        df=int(fit.df_resid),
    )
    se = float(np.sqrt(c @ fit.cov_params() @ c))
    if not np.isfinite(se):
        # A trial with leverage 1 (the only value of its cell and backend beside
        # the fixed effects) has no HC3 residual: the cell has no robust interval.
        return "no HC3 standard error (a trial with leverage 1)"
    return Contrast(float(c @ fit.params), se, int(fit.df_resid), method)


def model_ratio(
    trials: LogTrials,
    cells: Sequence[float],
    numerator: str,
    denominator: str,
    confidence: float = CONFIDENCE,
) -> RatioEstimate:
    """``numerator / denominator`` in ``cells`` (several: their geometric mean) from the model.

    The model is fitted to the rows of the two backends only (one residual
    variance for the pair, see the module's docstring); a fit that cannot be
    made falls back to the paired (else Welch) t interval on the cells alone.
    """
    return model_ratios(trials, cells, numerator, denominator, (confidence,))[0]


def model_ratios(
    trials: LogTrials,
    cells: Sequence[float],
    numerator: str,
    denominator: str,
    confidences: Sequence[float],
) -> list[RatioEstimate]:
    """``model_ratio`` at each of ``confidences``, from one fit of the model."""
    pair = trials.subset(np.isin(trials.backends, [numerator, denominator]))
    k = len(cells)
    weights: dict[tuple[float, str], float] = {}
    for cell in cells:
        weights[(float(cell), numerator)] = 1 / k
        weights[(float(cell), denominator)] = -1 / k
    n_num = min(_count(pair, c, numerator) for c in cells)
    n_den = min(_count(pair, c, denominator) for c in cells)
    n_pairs = min(_shared_reps(pair, c, numerator, denominator) for c in cells)
    fit = fit_contrast(pair, weights)
    if isinstance(fit, str):
        return [_fallback(pair, cells, numerator, denominator, c, fit) for c in confidences]
    out = []
    for confidence in confidences:
        lo, hi = fit.bounds(confidence)
        estimate = RatioEstimate(
            float(np.exp(fit.estimate)), float(np.exp(lo)), float(np.exp(hi)), n_num, n_den,
            fit.method, confidence, n_pairs, df=fit.df, log_se=fit.se,
        )  # fmt: skip
        out.append(estimate)
    return out


def _count(trials: LogTrials, cell: float, backend: str) -> int:
    return int(((trials.cells == float(cell)) & (trials.backends == backend)).sum())


def _shared_reps(trials: LogTrials, cell: float, a: str, b: str) -> int:
    at = trials.cells == float(cell)
    ra = set(trials.repetitions[at & (trials.backends == a)])
    rb = set(trials.repetitions[at & (trials.backends == b)])
    return len(ra & rb)


def _sides(trials: LogTrials, cell: float, numerator: str, denominator: str) -> CellSides:
    at = trials.cells == float(cell)
    num, den = at & (trials.backends == numerator), at & (trials.backends == denominator)
    return CellSides(
        trials.values[num].tolist(),
        trials.values[den].tolist(),
        trials.repetitions[num].tolist(),
        trials.repetitions[den].tolist(),
    )


def _fallback(
    trials: LogTrials, cells: Sequence[float], numerator: str, denominator: str,
    confidence: float, why: str,
) -> RatioEstimate:  # fmt: skip
    sides = [_sides(trials, c, numerator, denominator) for c in cells]
    if len(sides) == 1:
        s = sides[0]
        est = ratio_interval(
            s.numerator, s.denominator, s.numerator_blocks, s.denominator_blocks, confidence
        )
    else:
        est = pooled_ratio(sides, confidence)
    if not est.method:
        return est
    return RatioEstimate(
        est.ratio, est.ci_low, est.ci_high, est.n_numerator, est.n_denominator,
        f"{est.method} (linear model not fitted: {why})", est.confidence, est.n_pairs,
        df=est.df, log_se=est.log_se,
    )  # fmt: skip
