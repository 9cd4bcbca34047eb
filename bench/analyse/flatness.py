"""Is a fitted line flat? The classification claim 3 and the charts share.

Every backend and metric is judged by the same rule (``RULES["flat"]``, two-sided
since 2026-12-05): the growth over the measured range (``bench.analyse.slopes``)
is **flat** when its 95% interval lies inside +-``TOLERANCE_REL_INCREASE`` (20%),
**growing** when its lower end is above 0 and it is not flat, **falling** when its
upper end is below 0 and it is not flat (suspect, never support), **unclear**
otherwise, and **insufficient** with too few descriptor counts or repetitions.

There is no relative rule any more: epoll's flatness is judged on epoll's own
growth, never promoted (or demoted) by how much steeper select or poll are.
How epoll's slope compares with theirs is reported (``slope_comparison``)
but decides nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bench.analyse.rules import (
    FALLING,
    FLAT,
    GROWING,
    INSUFFICIENT,
    MIN_LEVELS,
    MIN_REPS_PER_LEVEL,
    TOLERANCE_REL_INCREASE,
    UNCLEAR,
)
from bench.analyse.slopes import SlopeFit


def fmt(x: float, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}"


def change_words(rel: float) -> str:
    """A relative change as +8% when small, x48 when large (+4,700% is hard to read)."""
    if rel is None or not math.isfinite(rel):
        return "n/a"
    return f"x{1 + rel:.0f}" if rel >= 1 else f"{rel * 100:+.0f}%"


def pct(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "+inf" if x > 0 else "-inf"
    return f"{x * 100:+.0f}%"


def classify_fit(fit: SlopeFit | None, need_reps: bool) -> tuple[str, str]:
    """FLAT | GROWING | FALLING | UNCLEAR | INSUFFICIENT (``RULES["flat"]``), with a reason."""
    if fit is None or fit.n_levels < MIN_LEVELS:
        n = 0 if fit is None else fit.n_levels
        return INSUFFICIENT, f"{n} descriptor counts measured, need at least {MIN_LEVELS}"
    if need_reps and fit.min_reps_per_level < MIN_REPS_PER_LEVEL:
        return (
            INSUFFICIENT,
            f"only {fit.min_reps_per_level} usable repetition(s) at some descriptor count, "
            f"need {MIN_REPS_PER_LEVEL} for an interval",
        )
    lo, hi = fit.rel_ci
    if math.isnan(lo) or math.isnan(hi):
        return INSUFFICIENT, "too few points for an interval"
    span = (
        f"growth {pct(lo)}..{pct(hi)} over {fit.x_min:.0f}-{fit.x_max:.0f} descriptors "
        f"({fit.confidence:.0%} profile interval of the log-scale fit)"
    )
    margin = f"+-{TOLERANCE_REL_INCREASE:.0%}"
    cls = classify_interval(lo, hi)
    reason = {
        FLAT: f"{span} lies inside {margin}",
        GROWING: f"{span} is above 0 and not inside {margin}",
        FALLING: (
            f"{span} is below 0 and not inside {margin}: a cost that falls with more "
            "descriptors, so the measurement is suspect"
        ),
        UNCLEAR: f"{span} straddles 0 and an edge of {margin} (too noisy to say)",
    }
    return cls, reason[cls]


def classify_interval(lo: float, hi: float) -> str:
    """FLAT | GROWING | FALLING | UNCLEAR for a growth interval (``RULES["flat"]``)."""
    tol = TOLERANCE_REL_INCREASE
    if -tol < lo and hi < tol:
        return FLAT
    if lo > 0:
        return GROWING
    if hi < 0:
        return FALLING
    return UNCLEAR


def classify_fits(fits: dict[str, SlopeFit], need_reps: bool) -> dict[str, tuple[str, str]]:
    """classify_fit for every backend (charts and verdict call this, so they agree)."""
    return {b: classify_fit(fit, need_reps) for b, fit in fits.items()}


def slope_words(fit: SlopeFit, unit: str) -> str:
    """'2.1 [1.8, 2.4] us per 1,000 descriptors'."""
    return (
        f"{fmt(fit.slope * 1000)} [{fmt(fit.ci_low * 1000)}, {fmt(fit.ci_high * 1000)}] "
        f"{unit} per 1,000 descriptors"
    )


def slope_comparison(
    fits: dict[str, SlopeFit], subject: str | None, comparators: Sequence[str]
) -> dict[str, str]:
    """How the subject's (epoll's) slope compares with each comparator's (decides nothing)."""
    ep = fits.get(subject) if subject else None
    out: dict[str, str] = {}
    if ep is None or not math.isfinite(ep.ci_high):
        return out
    for b in comparators:
        other = fits.get(b)
        if other is None or not (math.isfinite(other.ci_low) and other.ci_low > 0):
            continue
        bound = max(ep.ci_high, 0.0) / other.ci_low
        out[b] = (
            f"{subject}'s slope is at most {bound:.1%} of {b}'s (upper end of {subject}'s interval "
            f"over the lower end of {b}'s)"
        )
    return out
