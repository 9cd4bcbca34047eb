"""Where is the crossover? epoll's throughput ratio against the active share (ready-fraction).

Per family (``bench.analyse.families``: the family's backend whose mechanism
is epoll against its select and poll backends) and per registered count, each
share's ratio (epoll's throughput / the other's) with its paired 95% t
interval on log values (``bench.analyse.intervals.ratio_interval``), and the
share where the ratio falls to 1.0 from the fit of ``bench.analyse.crossover_fit``
with its interval, or "no crossover inside the measured range" with the side
of 1.0 the ratio stays on (``CROSSOVER_RULES``). Only usable trials count
(``bench.analyse.stats.usable_trials``: not flagged, not client-bound).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bench.analyse.crossover_fit import METHOD, CrossoverFit, crossover_fit
from bench.analyse.families import judged_families
from bench.analyse.intervals import ratio_interval
from bench.analyse.rules import CONFIDENCE
from bench.analyse.stats import usable_trials
from bench.measure.scenarios import ready_fraction
from bench.store.results import RunData

METRIC = "throughput_rps"

# The rules, in words, for verdict.json and the report (the lead merges them into RULES).
CROSSOVER_RULES: dict[str, str] = {
    "crossover": (
        "Crossover (ready-fraction scenario, closed loop), per family and registered count, "
        "epoll against the family's select and poll: at each active share (active / "
        "registered connections) the ratio epoll's throughput / the other's with its 95% "
        "paired t interval on log values (by repetition, else Welch); over the shares, "
        "least squares on the per-repetition log ratios of log(ratio) = c + log(1 + g "
        "(1/share - 1/share_max)), i.e. ratio = A + B/share (a fixed cost per request "
        "plus a scan of every registered descriptor shared among the ready ones). The "
        "crossover is the share where the fitted ratio is 1.0; its 95% interval is the "
        "profile confidence set (every share s where some curve with ratio(s) = 1 has a "
        "residual sum of squares within t^2 sigma^2 of the best, n - 2 degrees of freedom), "
        "reported inside the measured shares, an end open when the set reaches it. When the "
        "fitted ratio does not reach 1.0 inside the measured shares: no crossover inside the "
        "measured range, epoll ahead (ratio above 1.0) or behind throughout. Fewer than 3 "
        "shares or 2 residual degrees of freedom: insufficient. A lack-of-fit F test against "
        "one mean per share is reported beside each fit; it changes nothing."
    ),
}


def ready_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """Usable ready-fraction trials with their registered count and active share."""
    rows = usable_trials(trials)
    if rows.empty:
        return rows.assign(registered=pd.Series(dtype=float), share=pd.Series(dtype=float))
    rows = rows[(rows["scenario"] == ready_fraction.NAME) & rows[METRIC].notna()]
    registered = rows["idle_connections"].astype(float) + rows["active_connections"].astype(float)
    share = rows["active_connections"].astype(float) / registered
    return rows.assign(registered=registered, share=share.round(6))


def _share_points(cell: pd.DataFrame, subject: str, other: str) -> list[dict[str, Any]]:
    points = []
    for share in sorted(set(cell["share"])):
        at = cell[cell["share"] == share]
        ep, ot = at[at["backend"] == subject], at[at["backend"] == other]
        if ep.empty or ot.empty:
            continue
        est = ratio_interval(
            ep[METRIC].astype(float).tolist(), ot[METRIC].astype(float).tolist(),
            ep["repetition"].tolist(), ot["repetition"].tolist(), confidence=CONFIDENCE,
        )  # fmt: skip
        points.append({"share": float(share), **est.as_dict()})
    return points


def paired_log_ratios(cell: pd.DataFrame, subject: str, other: str) -> tuple[list, list]:
    """(shares, log ratios) of every (share, repetition) both backends measured."""
    ep = cell[cell["backend"] == subject].groupby(["share", "repetition"])[METRIC].first()
    ot = cell[cell["backend"] == other].groupby(["share", "repetition"])[METRIC].first()
    both = pd.concat([ep.rename("ep"), ot.rename("ot")], axis=1).dropna()
    both = both[(both["ep"] > 0) & (both["ot"] > 0)]
    shares = [float(s) for s, _ in both.index]
    return shares, list(np.log(both["ep"].astype(float) / both["ot"].astype(float)))


def pct(share: float) -> str:
    return f"{100 * share:.3g}%" if np.isfinite(share) else "?"


def describe(fit: CrossoverFit, subject: str, other: str, registered: int) -> str:
    """One sentence for one comparison."""
    where = f"At {registered:,} registered connections"
    span = f"{pct(fit.share_min)}-{pct(fit.share_max)} active"
    ends = f"fitted {fit.ratio_at_min:.2f}x at {pct(fit.share_min)}, {fit.ratio_at_max:.2f}x at "
    ends += f"{pct(fit.share_max)}"
    if fit.status == "insufficient":
        return (
            f"{where}, {subject} against {other}: too few shares or repetitions to fit a "
            f"crossover ({fit.n_levels} shares, {fit.df} residual degrees of freedom)."
        )
    if fit.status == "crossover":
        low = f"at most {pct(fit.ci_low)}" if fit.low_open else pct(fit.ci_low)
        high = f"{pct(fit.ci_high)} or beyond" if fit.high_open else pct(fit.ci_high)
        verb = "falls" if fit.direction == "falls" else "rises"
        return (
            f"{where}, {subject}'s throughput ratio to {other} {verb} to 1.0 at "
            f"{pct(fit.estimate)} active (95% interval {low} to {high}; {ends})."
        )
    side = "ahead of" if fit.direction == "above" else "behind"
    if np.isfinite(fit.ci_low):
        rest = (
            f"a crossover between {pct(fit.ci_low)} and {pct(fit.ci_high)} is not ruled out at 95%"
        )
    else:
        rest = "none inside the range at 95%"
    return (
        f"{where}, no crossover inside the measured range ({span}): {subject} stays {side} "
        f"{other} throughout ({ends}); {rest}."
    )


def crossover(run: RunData | pd.DataFrame) -> dict[str, Any]:
    """The crossover section: per family, registered count and comparator, points and fit."""
    trials = run.trials if isinstance(run, RunData) else run
    rows = ready_rows(trials) if not trials.empty else trials
    families: list[dict[str, Any]] = []
    if rows.empty:
        return {"rules": CROSSOVER_RULES, "method": METHOD, "families": families,
                "summary": "no usable ready-fraction trials"}  # fmt: skip
    for roles in judged_families(rows):
        subject, others = roles.subject, roles.comparators
        comparisons = []
        for n in sorted(set(rows["registered"])):
            cell = rows[rows["registered"] == n]
            for other in others:
                if other not in set(cell["backend"]) or subject not in set(cell["backend"]):
                    continue
                shares, logs = paired_log_ratios(cell, subject, other)
                fit = crossover_fit(shares, logs)
                comparisons.append(
                    {
                        "registered": int(n),
                        "subject": subject,
                        "other": other,
                        "points": _share_points(cell, subject, other),
                        "fit": fit.as_dict(),
                        "sentence": describe(fit, subject, other, int(n)),
                    }
                )
        if comparisons:
            families.append(
                {"family": roles.family, "label": roles.label, "subject": subject,
                 "comparisons": comparisons}
            )  # fmt: skip
    summary = " ".join(c["sentence"] for f in families for c in f["comparisons"])
    return {
        "rules": CROSSOVER_RULES,
        "method": METHOD,
        "families": families,
        "summary": summary or "no family had epoll and select or poll in the ready-fraction rows",
    }


def fit_of(comparison: dict[str, Any]) -> CrossoverFit:
    """A comparison's fit back as a ``CrossoverFit`` (charts draw its curve)."""
    f = comparison["fit"]
    return CrossoverFit(
        f["status"], f["crossover_share"], f["ci_low"], f["ci_high"], f["ci_low_open"],
        f["ci_high_open"], f["direction"], f["share_min"], f["share_max"],
        f["fitted_ratio_at_share_min"], f["fitted_ratio_at_share_max"], f["n_points"],
        f["n_levels"], f["df"], f["lack_of_fit_p"],
    )  # fmt: skip
