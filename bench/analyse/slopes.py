"""How fast a cost grows with the number of descriptors, with a tested 95% interval.

The model, fitted by least squares on log values::

    log(cost) = c_block + log(1 + g * (N - N_min)) + noise

``g`` is the relative growth per descriptor (relative to the cost at the
smallest count N_min), so the growth over the measured range is
``g * (N_max - N_min)`` and the slope per 1,000 descriptors is
``1000 * g * (fitted cost at N_min)``. The cost is linear in N, as an O(N)
scan or an O(1) call predicts; the noise is multiplicative, as a shared
machine's is; one block per repetition absorbs drift between repetitions
(the run sweeps every count once per repetition) and a linear term in the
trial's position within its repetition (``position_in_repetition``; the run
order is a random permutation per repetition) absorbs a drift within one.
Runs that recorded no position are fitted without it and the method says so.
The fitted model is::

    log(cost) = c_block + b * position + log(1 + g * (N - N_min)) + noise

Each backend is fitted with its own residual variance, not one pooled over
the backends of the sweep: select and poll at many descriptors are noisier
than epoll, and one variance for all would give the noisier backend an
interval too narrow (the same choice, measured, as for the cell ratios in
``bench.analyse.model``). The position term buys precision, not coverage: in
the simulations of ``tests/test_analyse_coverage.py`` (3 and 5 repetitions,
10-40% noise, +-15% drift across a repetition, 10% outliers at x1.6 mostly
dropped by an outcome-dependent rule) the fit covers at least 93% with or
without it, because the random order turns drift into noise.

Why not ordinary least squares on the raw values: with multiplicative noise
the spread grows with the cost, and a simulated line growing 50% over the
range got 95% t intervals that covered its slope only 82-91% of the time (3
repetitions, 5-40% noise, with or without a 20% block effect); the model
above covers 94-96% in the same simulations, steep or flat
(``tests/test_analyse_coverage.py``).

The interval for ``g`` is the profile (likelihood-ratio) interval from the F
distribution: every g whose residual sum of squares is within
``t^2 * sigma^2`` of the best, with ``sigma^2`` the residual variance on
``n - blocks - 1`` degrees of freedom. The interval for the slope is the
profile interval of ``g * exp(mean block)``. ``g`` is searched on a grid of the
log growth over the range, ``log(1 + g * span)`` from -4 to 12 in steps of 0.01
(a cost that falls to 2% or rises to 160,000x; bounds are interpolated between
grid points and agree with a grid ten times finer to 0.0003 in log growth); a
bound beyond the grid is left open (inf).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from bench.analyse.rules import CONFIDENCE

NAN = float("nan")
LOG_GROWTH_GRID = np.linspace(-4.0, 12.0, 1601)
METHOD_BLOCKS = (
    "least squares on log values with one block per repetition, "
    "log(cost) = block + log(1 + g (N - N_min)); profile F interval"
)
METHOD_ONE_BLOCK = METHOD_BLOCKS.replace(" with one block per repetition", "")
# Micro benchmarks: each fresh process times every count, so the process is the block.
METHOD_MICRO_PROCESSES = METHOD_BLOCKS.replace(
    "log values with one block per repetition", "log per-process medians with one block per process"
)
NO_POSITION = " (no position term: no position_in_repetition recorded)"
# Micro tables from before the per-process layout: one process, one median per count.
METHOD_MICRO = (
    "one process (a micro table without a process column): least squares on log medians, "
    "log(cost) = c + log(1 + g (N - N_min)); profile F interval, variance the larger of the "
    "residual scatter and the benchmarks' own standard errors"
)


@dataclass(frozen=True)
class SlopeFit:
    """A growth fit: slope per descriptor and relative growth, each with its interval.

    ``slope`` / ``ci_low`` / ``ci_high`` are in the metric's unit per
    descriptor; ``rel_slope`` and its bounds are per descriptor relative to
    ``baseline``, the fitted cost at ``x_min``; ``rel_increase`` is the growth
    over the measured range, the yardstick claim 3 judges.
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
    rel_slope: float = NAN
    rel_slope_ci_low: float = NAN
    rel_slope_ci_high: float = NAN
    n_blocks: int = 0
    df: int = 0
    confidence: float = CONFIDENCE

    @property
    def span(self) -> float:
        return self.x_max - self.x_min

    @property
    def rel_increase(self) -> float:
        return self.rel_slope * self.span

    @property
    def rel_ci(self) -> tuple[float, float]:
        return self.rel_slope_ci_low * self.span, self.rel_slope_ci_high * self.span

    def as_dict(self) -> dict[str, float | int | str]:
        lo, hi = self.rel_ci
        return {
            "slope_per_1000": _round(self.slope * 1000),
            "slope_per_1000_ci_low": _round(self.ci_low * 1000),
            "slope_per_1000_ci_high": _round(self.ci_high * 1000),
            "rel_growth_per_1000": _round(self.rel_slope * 1000),
            "rel_growth_per_1000_ci_low": _round(self.rel_slope_ci_low * 1000),
            "rel_growth_per_1000_ci_high": _round(self.rel_slope_ci_high * 1000),
            "projected_rel_increase": _round(self.rel_increase),
            "projected_rel_increase_ci_low": _round(lo),
            "projected_rel_increase_ci_high": _round(hi),
            "confidence": self.confidence,
            "method": self.method,
            "n_points": self.n_points,
            "n_levels": self.n_levels,
            "n_blocks": self.n_blocks,
            "df": self.df,
            "min_reps_per_level": self.min_reps_per_level,
            "x_min": self.x_min,
            "x_max": self.x_max,
            "fitted_at_x_min": _round(self.baseline),
        }


def _round(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}") if np.isfinite(x) else NAN


def growth_profile(
    x: np.ndarray,
    blocks: np.ndarray,
    log_y: np.ndarray,
    floor_var: float | np.ndarray = 0.0,
    confidence: float = CONFIDENCE,
    position: np.ndarray | None = None,
    kept: np.ndarray | None = None,
    covariates: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The fit for a batch of runs sharing one sweep: ``log_y`` is (runs, points).

    ``position`` (points, or runs x points) adds a linear term in the trial's
    position within its repetition; ``covariates`` (points x k, or runs x points
    x k) add one linear term each, measured beside the cost (idle-steps: the
    call's batch and the server's other work, ``bench.analyse.idle_steps``), and
    the growth is then the growth at their mean values; ``kept`` (runs x points, bool) leaves
    points out of a run's fit (a run's own exclusions), so runs that dropped
    different trials are still fitted in one batch. Returns arrays over runs:
    ``g``, ``g_lo``, ``g_hi`` (relative growth per unit x), ``s``, ``s_lo``,
    ``s_hi`` (slope), ``base`` (fitted value at x_min, the mean block and the
    mean position) and ``df`` (residual degrees of freedom).
    """
    x = np.asarray(x, dtype=float)
    log_y = np.atleast_2d(np.asarray(log_y, dtype=float))
    runs, n = log_y.shape
    w = np.ones((runs, n)) if kept is None else np.broadcast_to(kept, (runs, n)).astype(float)
    log_y = np.where(w > 0, log_y, 0.0)
    xp = x - x.min()
    span = float(xp.max())
    _, idx = np.unique(np.asarray(blocks), return_inverse=True)
    n_blocks = int(idx.max()) + 1
    member = np.zeros((n, n_blocks))
    member[np.arange(n), idx] = 1.0
    z = np.broadcast_to(member, (runs, n, n_blocks))
    if position is not None:
        pos = np.broadcast_to(np.asarray(position, dtype=float), (runs, n))
        centre = (pos * w).sum(axis=1, keepdims=True) / w.sum(axis=1, keepdims=True)
        z = np.concatenate([z, (pos - centre)[:, :, None]], axis=2)
    if covariates is not None:
        cov = np.asarray(covariates, dtype=float)
        cov = np.broadcast_to(cov if cov.ndim == 3 else cov[None], (runs, n, cov.shape[-1]))
        centre = (cov * w[:, :, None]).sum(axis=1, keepdims=True) / w.sum(axis=1)[:, None, None]
        z = np.concatenate([z, np.where(w[:, :, None] > 0, cov - centre, 0.0)], axis=2)
    # Nuisance (blocks, position, covariates) projected out of each run's kept points.
    zw = z * w[:, :, None]
    gram_inv = np.linalg.pinv(np.einsum("rnk,rnj->rkj", zw, z))
    coef_of = gram_inv @ zw.transpose(0, 2, 1)  # (runs, k, n): nuisance coefficients of a vector
    proj = w[:, :, None] * np.eye(n) - zw @ coef_of  # (runs, n, n), zero outside kept points
    rank = np.linalg.matrix_rank(np.einsum("rnk,rnj->rkj", zw, z))
    mean_block = np.zeros(z.shape[2])
    mean_block[:n_blocks] = 1.0 / n_blocks
    weights = mean_block @ coef_of  # (runs, n): the mean block's level of a vector
    g_grid = np.expm1(LOG_GROWTH_GRID) / span
    shape = np.log1p(np.outer(xp, g_grid))  # (points, grid)
    py = np.einsum("rnm,rm->rn", proj, log_y)
    quad = proj.reshape(runs, n * n) @ np.einsum("ng,mg->nmg", shape, shape).reshape(n * n, -1)
    rss = (py * log_y).sum(axis=1)[:, None] - 2 * py @ shape + quad
    c_bar = (weights * log_y).sum(axis=1)[:, None] - weights @ shape
    n_kept = w.sum(axis=1)
    df = n_kept - rank - 1
    rows = np.arange(runs)
    best = np.clip(rss.argmin(axis=1), 1, g_grid.size - 2)
    rss_min = parabola_min(rss, best)
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma2 = np.maximum(rss_min / df, floor_var)
    t = np.asarray(stats.t.ppf(0.5 + confidence / 2, np.where(df > 0, df, np.nan)))
    thr = rss_min + t**2 * sigma2
    inside = rss <= thr[:, None]
    pos_grid = np.arange(g_grid.size)
    first = np.where(inside, pos_grid, g_grid.size).min(axis=1)
    last = np.where(inside, pos_grid, -1).max(axis=1)
    lo_log = _edge(rss, thr, first, first - 1, LOG_GROWTH_GRID, -np.inf)
    hi_log = _edge(rss, thr, last, last + 1, LOG_GROWTH_GRID, np.inf)
    # An interval a few grid steps wide (little noise): the parabola through the
    # minimum places its edges better than straight lines between grid points.
    u_hat = _parabola_argmin(rss, best)
    half = _parabola_half_width(rss, best, thr - rss_min)
    narrow = (last - first < 8) | (first > last)
    lo_log = np.where(narrow, u_hat - half, np.minimum(lo_log, u_hat))
    hi_log = np.where(narrow, u_hat + half, np.maximum(hi_log, u_hat))
    first = np.where(first > last, best, first)
    last = np.maximum(last, first)
    g_hat = np.expm1(u_hat) / span
    base_hat = np.exp(c_bar[rows, best])
    # Slope bounds: over every g inside, g * exp(c_bar(g) +- r(g)); at the edges r = 0.
    r = np.sqrt(np.clip(thr[:, None] - rss, 0.0, None) / n_kept[:, None])
    # |g| exp(c_bar +- r): the sign of g picks which of the two is the lower bound.
    rising = np.where(g_grid >= 0, 1.0, -1.0)[None, :]
    s_lo = np.where(inside, g_grid * np.exp(c_bar - rising * r), np.inf).min(axis=1)
    s_hi = np.where(inside, g_grid * np.exp(c_bar + rising * r), -np.inf).max(axis=1)
    edges = [(lo_log, first), (hi_log, last)]
    for log_edge, k in edges:
        g_edge = np.expm1(log_edge) / span
        ok = np.isfinite(log_edge)
        s_edge = g_edge * np.exp(c_bar[rows, np.clip(k, 0, g_grid.size - 1)])
        s_lo = np.where(ok, np.minimum(s_lo, s_edge), s_lo)
        s_hi = np.where(ok, np.maximum(s_hi, s_edge), s_hi)
    s_lo = np.where(np.isfinite(lo_log), s_lo, -np.inf)
    s_hi = np.where(np.isfinite(hi_log), s_hi, np.inf)
    return {
        "g": g_hat,
        "g_lo": np.expm1(lo_log) / span,
        "g_hi": np.expm1(hi_log) / span,
        "s": g_hat * base_hat,
        "s_lo": s_lo,
        "s_hi": s_hi,
        "base": base_hat,
        "df": df,
    }


def _edge(
    rss: np.ndarray, thr: np.ndarray, inner: np.ndarray, outer: np.ndarray, grid: np.ndarray,
    beyond: float,
) -> np.ndarray:  # fmt: skip
    """Where rss crosses thr between the last grid point inside and the first outside."""
    rows = np.arange(rss.shape[0])
    open_end = (outer < 0) | (outer >= grid.size)
    inner = np.clip(inner, 0, grid.size - 1)
    outer = np.clip(outer, 0, grid.size - 1)
    r_in, r_out = rss[rows, inner], rss[rows, outer]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.clip((thr - r_in) / (r_out - r_in), 0.0, 1.0)
    frac = np.where(np.isfinite(frac), frac, 0.0)
    value = grid[inner] + frac * (grid[outer] - grid[inner])
    return np.where(open_end, beyond, value)


def parabola_min(rss: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Each row's smallest RSS, refined by a parabola through grid points k-1, k, k+1."""
    rows = np.arange(rss.shape[0])
    a, b, c = rss[rows, k - 1], rss[rows, k], rss[rows, k + 1]
    curv = a - 2 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        low = b - (a - c) ** 2 / (8 * curv)
    return np.where(curv > 0, np.minimum(low, b), b).clip(min=0.0)


def _parabola_half_width(rss: np.ndarray, k: np.ndarray, rise: np.ndarray) -> np.ndarray:
    """Half-width, in log growth, where the parabola through the minimum rises by ``rise``."""
    rows = np.arange(rss.shape[0])
    curv = rss[rows, k - 1] - 2 * rss[rows, k] + rss[rows, k + 1]  # per grid step squared
    step = LOG_GROWTH_GRID[1] - LOG_GROWTH_GRID[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        width = step * np.sqrt(2 * np.clip(rise, 0.0, None) / curv)
    return np.where(curv > 0, width, np.inf)


def _parabola_argmin(rss: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The log growth at the minimum, refined by a parabola through 3 grid points."""
    rows = np.arange(rss.shape[0])
    a, b, c = rss[rows, k - 1], rss[rows, k], rss[rows, k + 1]
    curv = a - 2 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(curv > 0, 0.5 * (a - c) / curv, 0.0)
    step = LOG_GROWTH_GRID[1] - LOG_GROWTH_GRID[0]
    return LOG_GROWTH_GRID[k] + np.clip(shift, -1.0, 1.0) * step


def _design(
    x: Sequence[float],
    y: Sequence[float],
    blocks: Sequence[object] | None,
    positions: Sequence[float] | None,
    covariates: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Finite x, positive finite y, each point's block as a string, its position and covariates.

    The position is kept only when every kept point has one and they differ;
    the covariates (points x k) are kept for the same points.
    """
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    keep = np.isfinite(xa) & np.isfinite(ya) & (ya > 0)
    names = ["" for _ in range(xa.size)] if blocks is None else [str(b) for b in blocks]
    pos = None
    if positions is not None:
        pa = np.asarray(positions, dtype=float)[keep]
        pos = pa if pa.size and np.isfinite(pa).all() and np.ptp(pa) > 0 else None
    cov = None
    if covariates is not None:
        cov = np.asarray(covariates, dtype=float).reshape(xa.size, -1)[keep]
    return xa[keep], ya[keep], np.array(names, dtype=object)[keep], pos, cov


def _empty(n: int, levels: int, reps: int, method: str) -> SlopeFit:
    return SlopeFit(NAN, NAN, NAN, n, levels, reps, NAN, NAN, NAN, method)


def growth_fit(
    x: Sequence[float],
    y: Sequence[float],
    blocks: Sequence[object] | None = None,
    positions: Sequence[float] | None = None,
    covariates: np.ndarray | None = None,
) -> SlopeFit:
    """The growth of ``y`` against ``x`` from repeated trials, one block per repetition.

    Points that are not positive are left out (log). Without ``blocks`` every
    point is in one block (plain least squares on log values). ``positions``
    (each trial's index within its repetition) adds a linear position term;
    without them (older runs) the method says there is none. ``covariates``
    (points x k, finite) add a linear term each (``growth_profile``).
    """
    xa, ya, ba, pa, ca = _design(x, y, blocks, positions, covariates)
    levels, counts = np.unique(xa, return_counts=True)
    reps = int(counts.min()) if counts.size else 0
    n_blocks = int(np.unique(ba).size)
    method = METHOD_BLOCKS if n_blocks > 1 else METHOD_ONE_BLOCK
    if pa is not None:
        method = method.replace("log(cost) = block", "log(cost) = block + b * position")
    else:
        method += NO_POSITION
    n_terms = n_blocks + (pa is not None) + (0 if ca is None else ca.shape[1])
    if levels.size < 2 or xa.size - n_terms - 1 < 1:
        return _empty(int(xa.size), int(levels.size), reps, method)
    fit = growth_profile(xa, ba, np.log(ya)[None, :], position=pa, covariates=ca)
    return _to_fit(fit, xa, levels, reps, n_blocks, method)


def micro_growth_fit(
    x: Sequence[float], centre: Sequence[float], standard_error: Sequence[float]
) -> SlopeFit:
    """Growth through one summarised value per count, one block (micro tables without processes).

    Newer micro tables have a value per process and count and are fitted by
    ``growth_fit`` with the process as the block (``METHOD_MICRO_PROCESSES``).
    """
    xa = np.asarray(x, dtype=float)
    ca = np.asarray(centre, dtype=float)
    se = np.asarray(standard_error, dtype=float)
    keep = np.isfinite(xa) & np.isfinite(ca) & (ca > 0)
    xa, ca = xa[keep], ca[keep]
    rel_se = np.nan_to_num(se[keep] / ca, nan=0.0)
    levels = np.unique(xa)
    if levels.size < 3:
        return _empty(int(xa.size), int(levels.size), 1, METHOD_MICRO)
    floor = float(np.mean(rel_se**2))
    fit = growth_profile(xa, np.zeros(xa.size), np.log(ca)[None, :], floor_var=floor)
    return _to_fit(fit, xa, levels, 1, 1, METHOD_MICRO)


def _to_fit(
    fit: dict[str, np.ndarray], xa: np.ndarray, levels: np.ndarray, reps: int, n_blocks: int,
    method: str,
) -> SlopeFit:  # fmt: skip
    return SlopeFit(
        slope=float(fit["s"][0]), ci_low=float(fit["s_lo"][0]), ci_high=float(fit["s_hi"][0]),
        n_points=int(xa.size), n_levels=int(levels.size), min_reps_per_level=reps,
        x_min=float(levels[0]), x_max=float(levels[-1]), baseline=float(fit["base"][0]),
        method=method, rel_slope=float(fit["g"][0]), rel_slope_ci_low=float(fit["g_lo"][0]),
        rel_slope_ci_high=float(fit["g_hi"][0]), n_blocks=n_blocks, df=int(fit["df"][0]),
    )  # fmt: skip
