"""The share where epoll's advantage falls to 1.0: a fit of the ratio, with its interval.

The model, fitted by least squares on per-repetition log ratios
(epoll's throughput / the other's, paired by repetition)::

    log(ratio) = c + log(1 + g (1/share - 1/share_max)) + noise

i.e. ``ratio = A + B / share``. Why this shape: in closed loop a wait call
returns about as many descriptors as are active, so select's and poll's scan
of all N registered descriptors costs each request about N / K = 1 / share
descriptors, while the rest of a request costs about the same for every
mechanism; epoll's cost per request barely moves. A straight line in
log(ratio) against log(share), the obvious alternative, is curved against
data of this shape (steep at small shares, flat near 100%): in 1,000
simulated sweeps of ratio = 0.6 + 0.08/share (crossover at 20%; shares 1, 5,
20, 50, 100%; 5% noise; 3 or 5 repetitions, as in ``tests/test_crossover.py``)
the Fieller interval of that line covered the crossover in 0% of them (15%
noise: 1-14%), and in 64-99% for the other curves tried (0.85 + 0.05/share,
A + B/share^0.8 or ^1.25, (A + B/share) / (1 + C/share), crossovers near
35%), against 94-99% for this fit on every one of them
(``tests/test_crossover.py`` measures the coverage of this fit).

The crossover is the share where the fitted ratio is 1.0. Its interval is the
profile (likelihood-ratio) confidence set: every crossover share s for which
some (g, c) with ratio(s) = 1 has a residual sum of squares within
``t^2 * sigma^2`` of the best (sigma^2 the residual variance on n - 2
degrees of freedom, t Student's on n - 2), i.e. the inversion of the fit's
confidence region, the method ``bench.analyse.slopes`` uses for growth.
It is computed exactly per value of g on a grid (for fixed g the crossover
moves monotonically with c, so each g gives an interval of crossovers; the
set is their union): a coarse grid finds where the region lies, a fine one
per run resolves it (with little noise it is narrower than a coarse step).
Only crossovers inside the measured range of shares are reported; when the
set reaches a range end the bound is open: the crossover may lie beyond that
end, or not exist at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from bench.analyse.rules import CONFIDENCE, CROSSOVER_MIN_DF, CROSSOVER_MIN_SHARES
from bench.analyse.slopes import parabola_min

NAN = float("nan")
# log(ratio at the smallest share / ratio at the largest), the grid of g: a
# change of the ratio over the range from 1/400 to 400 times (the README's quick
# run: epoll's closed-loop throughput with 4,000 idle + 8 active was 14x poll's).
# An even count of points keeps g = 0 off the grid.
LOG_CHANGE_GRID = np.linspace(-6.0, 6.0, 1200)
METHOD = (
    "least squares on per-repetition log ratios (paired by repetition), "
    "log(ratio) = c + log(1 + g (1/share - 1/share_max)), i.e. ratio = A + B/share; "
    "crossover interval: profile F confidence set (n - 2 df), inside the measured shares"
)
# Points of the second, per-run grid over the region the first one found.
FINE_POINTS = 241
MIN_LEVELS = CROSSOVER_MIN_SHARES
MIN_DF = CROSSOVER_MIN_DF


def profile(
    shares: np.ndarray, log_ratio: np.ndarray, confidence: float = CONFIDENCE
) -> dict[str, np.ndarray]:
    """The fit for a batch of runs sharing one design: ``log_ratio`` is (runs, points).

    Returns arrays over runs: ``estimate`` (crossover share of the best fit,
    nan when it is outside the measured shares), ``low`` / ``high`` (the hull
    of the confidence set inside the measured shares, nan when empty),
    ``low_open`` / ``high_open`` (the set reaches beyond the smallest /
    largest share, or holds curves with no crossover there), ``ratio_low`` /
    ``ratio_high`` (fitted ratio at the smallest / largest share), ``g``,
    ``c``, ``rss``, and the scalar ``df``.
    """
    s = np.asarray(shares, dtype=float)
    d = np.atleast_2d(np.asarray(log_ratio, dtype=float))
    n = s.size
    x = 1.0 / s
    x0, x1 = float(x.min()), float(x.max())
    span = x1 - x0
    xp = x - x0
    df = n - 2
    t = float(stats.t.ppf(0.5 + confidence / 2, df))
    # Coarse pass on the shared grid: where the confidence region lies in g.
    g = np.expm1(LOG_CHANGE_GRID) / span
    h = np.log1p(np.outer(xp, g))  # (points, grid)
    d_mean = d.mean(axis=1)
    h_mean = h.mean(axis=0)
    rss = (
        (d * d).sum(axis=1)[:, None] - 2 * d @ h + (h * h).sum(axis=0)[None, :]
        - n * (d_mean[:, None] - h_mean[None, :]) ** 2
    )  # fmt: skip
    rss = np.clip(rss, 0.0, None)
    best = np.clip(rss.argmin(axis=1), 1, g.size - 2)
    rss_min = parabola_min(rss, best)
    inside = rss <= (rss_min * (1 + t**2 / df))[:, None]
    pos = np.arange(g.size)
    first = np.where(inside, pos, g.size).min(axis=1)
    last = np.where(inside, pos, -1).max(axis=1)
    # Fine pass, per run, over the coarse region widened by one step each side:
    # with little noise the region is narrower than a coarse step.
    u_lo = LOG_CHANGE_GRID[np.clip(np.minimum(first, best) - 1, 0, g.size - 1)]
    u_hi = LOG_CHANGE_GRID[np.clip(np.maximum(last, best) + 1, 0, g.size - 1)]
    u = u_lo[:, None] + (u_hi - u_lo)[:, None] * np.linspace(0.0, 1.0, FINE_POINTS)[None, :]
    g2 = np.expm1(u) / span  # (runs, fine)
    rss, c_hat = _fine_rss(d, xp, g2)
    best = rss.argmin(axis=1)
    rows = np.arange(d.shape[0])
    rss_min = rss[rows, best]
    thr = rss_min * (1 + t**2 / df)  # rss_min + t^2 sigma^2, sigma^2 = rss_min / df
    inside = rss <= thr[:, None]
    # For each g inside, c spans c_hat +- w; the crossover x* = x0 + (e^-c - 1) / g
    # moves monotonically with c, so it spans the interval between its two ends.
    w = np.sqrt(np.clip(thr[:, None] - rss, 0.0, None) / n)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        x_a = x0 + np.expm1(-(c_hat + w)) / g2
        x_b = x0 + np.expm1(-(c_hat - w)) / g2
    lo_g, hi_g = np.fmin(x_a, x_b), np.fmax(x_a, x_b)
    meets = inside & (lo_g <= x1) & (hi_g >= x0)
    x_low = np.where(meets, np.maximum(lo_g, x0), np.inf).min(axis=1)
    x_high = np.where(meets, np.minimum(hi_g, x1), -np.inf).max(axis=1)
    empty = ~meets.any(axis=1)
    g_hat, c_best = g2[rows, best], c_hat[rows, best]
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        x_hat = x0 + np.expm1(-c_best) / g_hat
    in_range = (x_hat >= x0) & (x_hat <= x1)
    return {
        "estimate": np.where(in_range, 1.0 / x_hat, np.nan),
        # Larger x is a smaller share.
        "low": np.where(empty, np.nan, 1.0 / x_high),
        "high": np.where(empty, np.nan, 1.0 / x_low),
        "low_open": (inside & (hi_g > x1)).any(axis=1),
        "high_open": (inside & (lo_g < x0)).any(axis=1),
        "ratio_low": np.exp(c_best + np.log1p(g_hat * span)),
        "ratio_high": np.exp(c_best),
        "g": g_hat,
        "c": c_best,
        "rss": rss_min,
        "df": np.asarray(df),
    }


def _fine_rss(
    d: np.ndarray, xp: np.ndarray, g2: np.ndarray, chunk: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Residual sums of squares and best c for each run's own grid of g (runs, fine)."""
    n = xp.size
    rss = np.empty_like(g2)
    c_hat = np.empty_like(g2)
    for a in range(0, d.shape[0], chunk):
        b = min(a + chunk, d.shape[0])
        h = np.log1p(xp[None, :, None] * g2[a:b, None, :])  # (runs, points, fine)
        dm, hm = d[a:b].mean(axis=1), h.mean(axis=1)
        cross = np.einsum("rn,rnf->rf", d[a:b], h)
        r = (d[a:b] ** 2).sum(axis=1)[:, None] - 2 * cross + (h * h).sum(axis=1)
        rss[a:b] = np.clip(r - n * (dm[:, None] - hm) ** 2, 0.0, None)
        c_hat[a:b] = dm[:, None] - hm
    return rss, c_hat


@dataclass(frozen=True)
class CrossoverFit:
    """The crossover share of one comparison, its interval and the fit behind it.

    ``status``: "crossover" (the fitted ratio reaches 1.0 inside the measured
    shares), "none" (it does not: ``direction`` says on which side of 1.0 the
    ratio stays) or "insufficient" (fewer than 3 shares or 2 residual degrees
    of freedom). ``ci_low`` / ``ci_high`` bound the confidence set inside the
    measured shares (nan: empty); an open end (``low_open`` / ``high_open``)
    means the crossover may lie beyond that end of the range or not exist.
    """

    status: str
    estimate: float
    ci_low: float
    ci_high: float
    low_open: bool
    high_open: bool
    direction: str
    share_min: float
    share_max: float
    ratio_at_min: float
    ratio_at_max: float
    n_points: int
    n_levels: int
    df: int
    lack_of_fit_p: float
    method: str = METHOD
    confidence: float = CONFIDENCE

    def as_dict(self) -> dict[str, float | int | str | bool]:
        return {
            "status": self.status,
            "crossover_share": _round(self.estimate),
            "ci_low": _round(self.ci_low),
            "ci_high": _round(self.ci_high),
            "ci_low_open": self.low_open,
            "ci_high_open": self.high_open,
            "direction": self.direction,
            "share_min": self.share_min,
            "share_max": self.share_max,
            "fitted_ratio_at_share_min": _round(self.ratio_at_min),
            "fitted_ratio_at_share_max": _round(self.ratio_at_max),
            "n_points": self.n_points,
            "n_levels": self.n_levels,
            "df": self.df,
            "lack_of_fit_p": _round(self.lack_of_fit_p),
            "confidence": self.confidence,
            "method": self.method,
        }

    def curve(self, shares: np.ndarray) -> np.ndarray:
        """The fitted ratio at ``shares`` (for charts)."""
        x = 1.0 / np.asarray(shares, dtype=float)
        x0, x1 = 1.0 / self.share_max, 1.0 / self.share_min
        c = np.log(self.ratio_at_max)
        g = np.expm1(np.log(self.ratio_at_min) - c) / (x1 - x0)
        return np.exp(c + np.log1p(g * (x - x0)))


def _round(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}") if np.isfinite(x) else NAN


def lack_of_fit_p(shares: np.ndarray, log_ratio: np.ndarray, rss: float) -> float:
    """p-value of the F test of the model against one mean per share (nan if untestable)."""
    levels = np.unique(shares)
    pure = sum(float(((v - v.mean()) ** 2).sum()) for v in (log_ratio[shares == s] for s in levels))
    df_pure, df_lof = shares.size - levels.size, levels.size - 2
    if df_pure < 1 or df_lof < 1 or pure <= 0:
        return NAN
    f = max(rss - pure, 0.0) / df_lof / (pure / df_pure)
    return float(stats.f.sf(f, df_lof, df_pure))


def crossover_fit(
    shares: Sequence[float], log_ratio: Sequence[float], confidence: float = CONFIDENCE
) -> CrossoverFit:
    """The crossover of one comparison from its (share, per-repetition log ratio) points."""
    s = np.asarray(shares, dtype=float)
    d = np.asarray(log_ratio, dtype=float)
    keep = np.isfinite(s) & (s > 0) & np.isfinite(d)
    s, d = s[keep], d[keep]
    levels = np.unique(s)
    n, df = int(s.size), int(s.size) - 2
    lo_share = float(levels.min()) if levels.size else NAN
    hi_share = float(levels.max()) if levels.size else NAN
    if levels.size < MIN_LEVELS or df < MIN_DF:
        return CrossoverFit(
            "insufficient", NAN, NAN, NAN, True, True, "", lo_share, hi_share, NAN, NAN, n,
            int(levels.size), max(df, 0), NAN, confidence=confidence,
        )  # fmt: skip
    fit = profile(s, d[None, :], confidence)
    estimate = float(fit["estimate"][0])
    r_min, r_max = float(fit["ratio_low"][0]), float(fit["ratio_high"][0])
    if np.isfinite(estimate):
        status = "crossover"
        direction = "falls" if r_min > r_max else "rises"
    else:
        status = "none"
        direction = "above" if min(r_min, r_max) >= 1.0 else "below"
    return CrossoverFit(
        status, estimate, float(fit["low"][0]), float(fit["high"][0]),
        bool(fit["low_open"][0]), bool(fit["high_open"][0]), direction, lo_share, hi_share,
        r_min, r_max, n, int(levels.size), df, lack_of_fit_p(s, d, float(fit["rss"][0])),
        confidence=confidence,
    )  # fmt: skip
