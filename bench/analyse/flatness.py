"""Is a fitted line flat? The classification claim 3 and the charts share.

For each backend and metric a straight line is fitted to the metric against the
number of descriptors, and its slope is turned into the *projected relative
increase* over the measured range: slope * (N_max - N_min) / (median value at
N_min). A backend is

- **flat** when the upper end of that interval is below ``TOLERANCE_REL_INCREASE``
  (20%): over the whole sweep it slows down by less than a fifth;
- **growing** when the lower end is above 20%: it slows down by more than a
  fifth, beyond doubt;
- **unclear** otherwise (the interval straddles 20%: too noisy to say).

Relative flatness: on a busy or virtualised machine a per-trial baseline can
be noisy enough that epoll's interval straddles 20% although its slope is
tiny. When select or poll grow beyond doubt on the same metric, epoll is also
called **flat** if the upper end of its slope interval is below
``RELATIVE_SLOPE_FRACTION`` (5%) of the lower end of the smallest of their
slopes: whatever epoll's per-descriptor cost is, it is at least 20 times
smaller than theirs. The reason text says which rule applied.
"""

from __future__ import annotations

import math

from bench.analyse.rules import (
    COMPARATORS,
    MIN_LEVELS,
    MIN_REPS_PER_LEVEL,
    RELATIVE_RULE_MARK,
    RELATIVE_SLOPE_FRACTION,
    SUBJECT,
    TOLERANCE_REL_INCREASE,
)
from bench.analyse.stats import SlopeFit


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
    return "n/a" if x is None or not math.isfinite(x) else f"{x * 100:+.0f}%"


def classify_fit(fit: SlopeFit | None, need_reps: bool) -> tuple[str, str]:
    """'flat' | 'growing' | 'unclear' | 'insufficient', with a reason."""
    if fit is None or fit.n_levels < MIN_LEVELS:
        n = 0 if fit is None else fit.n_levels
        return "insufficient", f"{n} descriptor counts measured, need at least {MIN_LEVELS}"
    if need_reps and fit.min_reps_per_level < MIN_REPS_PER_LEVEL:
        return (
            "insufficient",
            f"only {fit.min_reps_per_level} usable repetition(s) at some descriptor count, "
            f"need {MIN_REPS_PER_LEVEL} for an interval",
        )
    lo, hi = fit.rel_ci
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "insufficient", "no positive value at the smallest descriptor count to scale by"
    span = f"{pct(lo)}..{pct(hi)} over {fit.x_min:.0f}-{fit.x_max:.0f}"
    if hi < TOLERANCE_REL_INCREASE:
        return "flat", f"projected increase {span} stays under {pct(TOLERANCE_REL_INCREASE)}"
    if lo > TOLERANCE_REL_INCREASE:
        return "growing", f"projected increase {span} exceeds {pct(TOLERANCE_REL_INCREASE)}"
    return "unclear", f"projected increase {span} straddles {pct(TOLERANCE_REL_INCREASE)} (noisy)"


def classify_fits(fits: dict[str, SlopeFit], need_reps: bool) -> dict[str, tuple[str, str]]:
    """classify_fit for every backend, then the relative-flatness rule for epoll.

    Charts and the verdict both call this, so a chart title never disagrees
    with the verdict about which line is flat.
    """
    classes = {b: classify_fit(fit, need_reps) for b, fit in fits.items()}
    ep = fits.get(SUBJECT)
    if ep is not None and classes[SUBJECT][0] == "unclear":
        growing = {b: fits[b] for b in COMPARATORS if b in classes and classes[b][0] == "growing"}
        relative = relatively_flat(ep, growing)
        if relative is not None:
            classes[SUBJECT] = ("flat", f"{classes[SUBJECT][1]}, but {relative}")
    return classes


def relatively_flat(ep: SlopeFit, growing: dict[str, SlopeFit]) -> str | None:
    """Reason text when epoll's slope is surely under 5% of every growing comparator's."""
    if not growing or not math.isfinite(ep.ci_high):
        return None
    floor_backend, floor = min(
        ((b, f.ci_low) for b, f in growing.items()), key=lambda item: item[1]
    )
    if not (math.isfinite(floor) and floor > 0):
        return None
    bound = max(ep.ci_high, 0.0)
    if bound >= RELATIVE_SLOPE_FRACTION * floor:
        return None
    lead = RELATIVE_RULE_MARK.removeprefix("but ")
    return (
        f"{lead} {fmt(bound * 1000)} per 1000 descriptors, under "
        f"{RELATIVE_SLOPE_FRACTION:.0%} of {floor_backend}'s (at least {fmt(floor * 1000)})"
    )
