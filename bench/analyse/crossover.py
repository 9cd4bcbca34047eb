"""Where is the crossover? epoll's advantage against the active share (ready-fraction).

Per family (``bench.analyse.families``: the family's backend whose mechanism
is epoll against its select and poll backends), per registered count and per
metric, each share's ratio with its paired 95% t interval on log values
(``bench.analyse.intervals.ratio_interval``), and the share where the ratio
falls to 1.0 from the fit of ``bench.analyse.crossover_fit`` with its
interval, or "no crossover inside the measured range" with the side of 1.0
the ratio stays on (``CROSSOVER_RULES``).

Two metrics, each a ratio above 1.0 when epoll is ahead: throughput (epoll's
/ the other's), on fault-free trials that are not client-bound (a throughput
the client set is the client's; the crossover carries no status, so this rule
is not part of the verdict's sensitivity analysis); and server CPU
per request (the other's / epoll's), where epoll's trial may be client-bound.
Why the second: with few active connections, or thousands, the Python epoll
server outran the load generator (busy 42% at 40 of 4,000 active, 64% at
4,000 of 4,000: standard phases, 2-vCPU VM), so its throughput is the
client's and its trials leave the throughput fit, while its CPU per request
does not depend on the pace: 9.7-12.3 us per request in every cell of that
run, at 8 to 890 ready descriptors per wait call. The other backend's trial
must be usable (its scan is shared among fewer ready descriptors when the
client sets the pace, which would overstate epoll's advantage).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bench import metrics
from bench.analyse.crossover_fit import METHOD, CrossoverFit, crossover_fit
from bench.analyse.families import judged_families
from bench.analyse.flags import client_bound
from bench.analyse.intervals import ratio_interval
from bench.analyse.rules import CONFIDENCE, RULES
from bench.analyse.stats import usable_trials
from bench.measure.scenarios import ready_fraction
from bench.store.results import RunData


def _ratio_side(metric: metrics.Metric, client_bound_ok: bool) -> tuple[str, bool, bool]:
    """(column, epoll in the numerator?, ...): epoll's figure goes on top when higher is
    better, so a ratio above 1 is epoll's advantage for either metric."""
    return metric.name, metric.better is metrics.Better.HIGHER, client_bound_ok


# Metric name -> (column, epoll in the numerator?, epoll's trial may be client-bound?)
METRICS: dict[str, tuple[str, bool, bool]] = {
    "throughput": _ratio_side(metrics.THROUGHPUT_RPS, client_bound_ok=False),
    "cpu_per_request": _ratio_side(metrics.SERVER_CPU_US_PER_REQ, client_bound_ok=True),
}
WORDS = {
    "throughput": ("throughput", "{subject}'s throughput / {other}'s"),
    "cpu_per_request": ("CPU per request", "{other}'s server CPU per request / {subject}'s"),
}

# The rule, in words, for verdict.json and the report (text in bench.analyse.rules).
CROSSOVER_RULES: dict[str, str] = {"crossover": RULES["crossover"]}


def ready_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """Fault-free ready-fraction trials, their registered count, share and whether they are
    not client-bound (``usable``: RULES["crossover"] keeps that rule for throughput)."""
    if trials.empty:
        return trials.assign(registered=[], share=[], usable=[])
    rows = usable_trials(trials)
    rows = rows[rows["scenario"] == ready_fraction.NAME]
    registered = rows["idle_connections"].astype(float) + rows["active_connections"].astype(float)
    share = rows["active_connections"].astype(float) / registered
    usable = ~client_bound(rows)
    return rows.assign(registered=registered, share=share.round(6), usable=usable)


def sides(
    cell: pd.DataFrame, metric: str, subject: str, other: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numerator rows, denominator rows) of one comparison under ``metric``'s rule."""
    column, subject_on_top, subject_may_be_client_bound = METRICS[metric]
    rows = cell[cell[column].notna() & (cell[column].astype(float) > 0)]
    ep = rows[rows["backend"] == subject]
    if not subject_may_be_client_bound:
        ep = ep[ep["usable"]]
    ot = rows[(rows["backend"] == other) & rows["usable"]]
    return (ep, ot) if subject_on_top else (ot, ep)


def _share_points(num: pd.DataFrame, den: pd.DataFrame, column: str) -> list[dict[str, Any]]:
    points = []
    for share in sorted(set(num["share"]) & set(den["share"])):
        a, b = num[num["share"] == share], den[den["share"] == share]
        est = ratio_interval(
            a[column].astype(float).tolist(), b[column].astype(float).tolist(),
            a["repetition"].tolist(), b["repetition"].tolist(), confidence=CONFIDENCE,
        )  # fmt: skip
        points.append({"share": float(share), **est.as_dict()})
    return points


def paired_log_ratios(
    num: pd.DataFrame, den: pd.DataFrame, column: str
) -> tuple[list[float], list[float]]:
    """(shares, log ratios) of every (share, repetition) both sides measured."""
    a = num.groupby(["share", "repetition"])[column].first().rename("a")
    b = den.groupby(["share", "repetition"])[column].first().rename("b")
    both = pd.concat([a, b], axis=1).dropna()
    shares = [float(s) for s, _ in both.index]
    return shares, [float(v) for v in np.log(both["a"].astype(float) / both["b"].astype(float))]


def pct(share: float) -> str:
    return f"{100 * share:.3g}%" if np.isfinite(share) else "?"


def describe(fit: CrossoverFit, metric: str, subject: str, other: str, registered: int) -> str:
    """One sentence for one comparison."""
    what = WORDS[metric][0]
    where = f"At {registered:,} registered connections ({what})"
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
            f"{where}, {subject}'s advantage over {other} {verb} to 1.0 at "
            f"{pct(fit.estimate)} active (95% interval {low} to {high}; {ends})."
        )
    side = "ahead of" if fit.direction == "above" else "behind"
    if np.isfinite(fit.ci_low):
        rest = f"a crossover from {pct(fit.ci_low)} to {pct(fit.ci_high)} is not ruled out at 95%"
    else:
        rest = "none inside the range at 95%"
    return (
        f"{where}, no crossover inside the measured range ({span}): {subject} stays {side} "
        f"{other} throughout ({ends}); {rest}."
    )


def comparison(
    cell: pd.DataFrame, metric: str, subject: str, other: str, registered: int
) -> dict[str, Any] | None:
    """One comparison under one metric: its share points, fit and sentence (None: no pairs)."""
    column = METRICS[metric][0]
    num, den = sides(cell, metric, subject, other)
    if num.empty or den.empty:
        return None
    shares, logs = paired_log_ratios(num, den, column)
    fit = crossover_fit(shares, logs)
    return {
        "metric": metric,
        "ratio_definition": WORDS[metric][1].format(subject=subject, other=other),
        "registered": registered,
        "subject": subject,
        "other": other,
        "points": _share_points(num, den, column),
        "fit": fit.as_dict(),
        "sentence": describe(fit, metric, subject, other, registered),
    }


def crossover(run: RunData | pd.DataFrame) -> dict[str, Any]:
    """The crossover section: per family, metric, registered count and comparator."""
    trials = run.trials if isinstance(run, RunData) else run
    rows = ready_rows(trials)
    families: list[dict[str, Any]] = []
    for roles in judged_families(rows) if not rows.empty else []:
        subject = roles.subject
        comps = []
        for metric in METRICS:
            for n in sorted(set(rows["registered"])):
                cell = rows[rows["registered"] == n]
                for other in roles.comparators:
                    comp = comparison(cell, metric, str(subject), other, int(n))
                    if comp is not None:
                        comps.append(comp)
        if comps:
            families.append({"family": roles.family, "label": roles.label, "subject": subject,
                             "comparisons": comps})  # fmt: skip
    summary = " ".join(c["sentence"] for f in families for c in f["comparisons"])
    return {
        "rules": CROSSOVER_RULES,
        "method": METHOD,
        "families": families,
        "summary": summary or "no family had epoll and select or poll in the ready-fraction rows",
    }


def fit_of(comp: dict[str, Any]) -> CrossoverFit:
    """A comparison's fit back as a ``CrossoverFit`` (charts draw its curve)."""
    f = comp["fit"]
    return CrossoverFit(
        f["status"], f["crossover_share"], f["ci_low"], f["ci_high"], f["ci_low_open"],
        f["ci_high_open"], f["direction"], f["share_min"], f["share_max"],
        f["fitted_ratio_at_share_min"], f["fitted_ratio_at_share_max"], f["n_points"],
        f["n_levels"], f["df"], f["lack_of_fit_p"],
    )  # fmt: skip
