"""Claim 2: is epoll more efficient than select and poll?

Judged in two regimes (``RULES["regimes"]``), because published work (Gammo et
al., OLS 2004) and the reference machine's runs show the answer depends on it:
idle-heavy (the idle-scaling cell nearest 1,000 idle connections) and
all-active (every active-scaling connection count). In each cell epoll is
compared with select and with poll on server CPU per request (the other's /
epoll's), with a 90% interval (two one-sided tests at 5%) against a margin of
+-10% stated in advance (``RULES["equivalence"]``): EQUIVALENT, epoll better,
epoll worse or INCONCLUSIVE. The loop of a cell follows the run's plan (closed
wherever the plan measured the pair in closed loop), never how many repetitions
survived. Beside each comparison, shown and never deciding
(``RULES["claim2_shown"]``, ``RULES["all_active_mechanism"]``): the whole
machine's CPU per request, closed-loop throughput, the wait call's share of
server CPU per request and its CPU per event, and for the Python family the
micro benchmark's every-descriptor-ready rows. A regime's status follows
``RULES["claim2_regime"]``, the claim's ``RULES["claim2"]``. All-active cells
with fewer than 50 connections are shown but not judged
(``RULES["mechanism_cells"]``); a geometric mean over the judged cells is
shown as a summary and decides nothing. Judged per family
(``RULES["families"]``): "epoll", "select" and "poll" are the family's backends
of those mechanisms; ``bench.analyse.edge_level`` reuses the cells with
epoll-et in epoll's place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from bench import metrics
from bench.analyse.claim2_shown import (
    mechanism_view,
    micro_all_ready,
    shown_ratios,
    undecided_reason,
)
from bench.analyse.families import FamilyRoles, assemble_claim, headline_roles, per_family
from bench.analyse.flatness import fmt
from bench.analyse.intervals import RatioEstimate
from bench.analyse.model import LogTrials, model_ratio, model_ratios
from bench.analyse.rules import (
    BETTER,
    CLAIM2_METRIC,
    CLAIM_TEXT,
    CONFIDENCE,
    EQUIVALENCE_BOUNDS,
    EQUIVALENCE_CONFIDENCE,
    EQUIVALENT,
    IDLE_HEAVY_TARGET_N,
    INCONCLUSIVE,
    MIN_CONNECTIONS_FOR_MECHANISM,
    NOT_SUPPORTED,
    PARTLY,
    SUPPORTED,
    WORSE,
)
from bench.analyse.stats import nearest_level, usable_trials
from bench.measure.scenarios import active_scaling, idle_scaling
from bench.store.results import RunData
from bench.tables import Mode

__all__ = ["BETTER", "EQUIVALENT", "WORSE", "claim2", "classify_ratio", "compare_cell"]

METRIC_WORDS = "server CPU per request"


def classify_ratio(est: RatioEstimate, better: str = BETTER, worse: str = WORSE) -> str:
    """EQUIVALENT | better | worse | INCONCLUSIVE from the decision interval."""
    lo, hi = est.ci_low, est.ci_high
    if not (pd.notna(lo) and pd.notna(hi)):
        return INCONCLUSIVE
    low_bound, high_bound = EQUIVALENCE_BOUNDS
    if lo > high_bound:
        return better
    if hi < low_bound:
        return worse
    if lo >= low_bound and hi <= high_bound:
        return EQUIVALENT
    return INCONCLUSIVE


def _model(
    rows: pd.DataFrame, level_col: str, levels: Sequence[float], subject: str, other: str,
    confidence: float, col: str = CLAIM2_METRIC,
) -> RatioEstimate:  # fmt: skip
    """The other's ``col`` over the subject's in ``levels``, from the linear model pooled
    over every cell of ``rows`` (one loop of one sweep)."""
    trials = LogTrials.from_rows(rows, col, level_col)
    return model_ratio(trials, levels, other, subject, confidence)


def compare_cell(
    rows: pd.DataFrame,
    level_col: str,
    level: float,
    other: str,
    closed: bool,
    subject: str,
    labels: tuple[str, str] = (BETTER, WORSE),
    micro: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """``subject`` against ``other`` in one cell (usable ``rows`` of one loop): the ratio of
    server CPU per request with its 90% and 95% intervals, its class, and what is shown."""
    cell = rows[rows[level_col].astype(float) == level]
    # One fit gives both intervals: the model does not depend on the confidence.
    decision, shown = model_ratios(
        LogTrials.from_rows(rows, CLAIM2_METRIC, level_col), [level], other, subject,
        (EQUIVALENCE_CONFIDENCE, CONFIDENCE),
    )  # fmt: skip
    active = cell["active_connections"].dropna()
    idle = cell["idle_connections"].dropna()
    connections = int((active.max() if len(active) else 0) + (idle.max() if len(idle) else 0))
    judged = connections >= MIN_CONNECTIONS_FOR_MECHANISM
    cls = classify_ratio(decision, *labels)
    view = mechanism_view(cell, (subject, other))
    loop = Mode.CLOSED if closed else Mode.OPEN
    reason = (
        f"{subject} vs {other} at {int(level)} {level_col.split('_')[0]}, {loop} loop: "
        f"{fmt(decision.ratio)}x [{fmt(decision.ci_low)}, {fmt(decision.ci_high)}] "
        f"({METRIC_WORDS}, {EQUIVALENCE_CONFIDENCE:.0%} "
        f"{decision.method.split(' interval')[0]} interval) -> {cls}"
    )
    if cls == INCONCLUSIVE:
        reason += f" ({undecided_reason(decision, view, subject, other)})"
    elif min(decision.n_numerator, decision.n_denominator) < 2:
        reason += " (fewer than 2 usable repetitions)"
    if not judged:
        reason += f" [not judged: {connections} connections < {MIN_CONNECTIONS_FOR_MECHANISM}]"
    out: dict[str, Any] = {
        "backend": other,
        level_col: float(level),
        "connections": connections,
        "loop": loop,
        "metric": METRIC_WORDS,
        "ratio_definition": f"other's server CPU per request / {subject}'s",
        "decision": decision.as_dict(),
        "interval_95": shown.as_dict(),
        "class": cls,
        "judged": judged,
        "class_reason": reason,
        "shown": shown_ratios(cell, subject, other, closed),
        "mechanism": view,
    }
    micro_rows = micro_all_ready(micro, (subject, other), connections)
    if micro_rows:
        out["micro_all_ready"] = micro_rows
    return out


def judge_regime(name: str, comps: list[dict[str, Any]], where: str) -> dict[str, Any]:
    """A regime's status from its judged comparisons (``RULES["claim2_regime"]``)."""
    judged = [c for c in comps if c["judged"]]
    better = [c for c in judged if c["class"] == BETTER]
    against = [c for c in judged if c["class"] in (EQUIVALENT, WORSE)]
    detail = "; ".join(c["class_reason"] for c in comps)
    if not judged:
        status = INCONCLUSIVE
        reason = f"{name}: no comparison could be judged" + (f": {detail}" if detail else "")
        deciding: list[dict[str, Any]] = []
    elif len(better) == len(judged):
        status, deciding = SUPPORTED, better
        reason = f"{name} ({where}): epoll better beyond the margin in every comparison: {detail}"
    elif len(against) == len(judged):
        status, deciding = NOT_SUPPORTED, against
        reason = f"{name} ({where}): epoll equivalent or worse in every comparison: {detail}"
    else:
        status, deciding = INCONCLUSIVE, []
        what = "decided both ways" if better and against else "not every comparison decided"
        reason = f"{name} ({where}): {what}: {detail}"
    return {
        "regime": name,
        "where": where,
        "status": status,
        "reason": reason,
        "decided_by": [
            {"comparison": c["class_reason"], "rules": ["claim2_regime", "equivalence"]}
            for c in deciding
        ],
        "comparisons": comps,
    }


def _levels(rows: pd.DataFrame, backend: str, col: str) -> set[float]:
    return set(rows[rows["backend"] == backend][col].dropna().astype(float))


def _planned_loop(plan: pd.DataFrame, backends: Sequence[str]) -> str | None:
    """'closed' when the plan measured every one of ``backends`` in closed loop, else 'open'."""
    for loop in (Mode.CLOSED, Mode.OPEN):
        sub = plan[plan["mode"] == loop]
        if all((sub["backend"] == b).any() for b in backends):
            return loop
    return None


def _idle_plan(trials: pd.DataFrame) -> pd.DataFrame:
    """Every recorded idle-scaling trial above 0 idle, whatever its status (the run's plan).

    A select cell that had to reject descriptors >= 1024 does not measure its N.
    """
    rows = trials[
        (trials["scenario"] == idle_scaling.NAME)
        & (trials[metrics.SERVER_REJECTED_FD_SETSIZE.name].fillna(0) == 0)
    ]
    return rows[rows["idle_connections"].astype(float) > 0]


def idle_cells(
    trials: pd.DataFrame,
    subject: str,
    comparators: Sequence[str],
    labels: tuple[str, str],
    micro: pd.DataFrame | None = None,
    usable: pd.DataFrame | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """The idle-heavy cells (``RULES["regimes"]``) of ``subject`` against each comparator
    (``usable``: ``usable_trials(trials)`` when the caller has it already)."""
    plan = _idle_plan(trials)
    usable = usable if usable is not None else usable_trials(trials)
    comps, wheres = [], []
    for other in comparators:
        loop = _planned_loop(plan, (subject, other))
        if loop is None:
            continue
        sub = plan[plan["mode"] == loop]
        shared = _levels(sub, subject, "idle_connections") & _levels(sub, other, "idle_connections")
        level = nearest_level(list(shared), IDLE_HEAVY_TARGET_N)
        if level is None:
            continue
        rows = usable[(usable["scenario"] == idle_scaling.NAME) & (usable["mode"] == loop)]
        comps.append(
            compare_cell(
                rows, "idle_connections", level, other, loop == Mode.CLOSED, subject, labels, micro
            )
        )
        active = sorted({int(a) for a in sub["active_connections"].dropna()})
        where = f"{int(level)} idle + {'/'.join(map(str, active))} active, {loop} loop"
        if where not in wheres:
            wheres.append(where)
    return comps, "; ".join(wheres) or "no idle-scaling data"


def regime_idle(
    trials: pd.DataFrame,
    roles: FamilyRoles | None = None,
    micro: pd.DataFrame | None = None,
    usable: pd.DataFrame | None = None,
) -> dict[str, Any]:
    roles = roles or headline_roles()
    comps, where = idle_cells(
        trials, str(roles.subject), roles.comparators, (BETTER, WORSE), micro, usable
    )
    return judge_regime("idle-heavy", comps, where)


def _active_plan(trials: pd.DataFrame) -> pd.DataFrame:
    """Every recorded all-active trial, whatever its status: active-scaling, plus closed-loop
    idle-scaling with 0 idle (also "every connection active") at counts active-scaling lacks."""
    rows = trials[trials["scenario"] == active_scaling.NAME]
    zero_idle = trials[
        (trials["scenario"] == idle_scaling.NAME)
        & (trials["idle_connections"] == 0)
        & (trials["mode"] == Mode.CLOSED)
        & ~trials["active_connections"].isin(rows["active_connections"])
    ]
    if not zero_idle.empty:
        rows = pd.concat([rows, zero_idle])
    return rows


def active_cells(
    trials: pd.DataFrame,
    subject: str,
    comparators: Sequence[str],
    labels: tuple[str, str],
    micro: pd.DataFrame | None = None,
    usable: pd.DataFrame | None = None,
) -> tuple[list[dict[str, Any]], str, dict[str, Any]]:
    """The all-active cells (``RULES["regimes"]``), where, and the pooled summary per comparator."""
    plan = _active_plan(trials)
    usable = usable if usable is not None else usable_trials(trials)
    usable = plan.loc[plan.index.isin(usable.index)]
    comps: list[dict[str, Any]] = []
    pooled: dict[str, Any] = {}
    counts: set[float] = set()
    loops: set[str] = set()
    for other in comparators:
        loop = _planned_loop(plan, (subject, other))
        if loop is None:
            continue
        sub = plan[plan["mode"] == loop]
        rows = usable[usable["mode"] == loop]
        shared = sorted(
            _levels(sub, subject, "active_connections") & _levels(sub, other, "active_connections")
        )
        closed = loop == Mode.CLOSED
        cells = [
            compare_cell(rows, "active_connections", lv, other, closed, subject, labels, micro)
            for lv in shared
        ]
        comps += cells
        counts |= set(shared)
        loops.add(loop)
        judged = [lv for lv, c in zip(shared, cells, strict=True) if c["judged"]]
        if judged:
            summary = _model(
                rows, "active_connections", judged, subject, other, CONFIDENCE
            ).as_dict()
            pooled[other] = {**summary, "cells": judged, "note": "summary only; decides nothing"}
    where = (
        f"every connection active, {'/'.join(str(int(v)) for v in sorted(counts))} connections, "
        f"{'/'.join(sorted(loops))} loop"
        if counts
        else "no active-scaling data"
    )
    return comps, where, pooled


def regime_active(
    trials: pd.DataFrame,
    roles: FamilyRoles | None = None,
    micro: pd.DataFrame | None = None,
    usable: pd.DataFrame | None = None,
) -> dict[str, Any]:
    roles = roles or headline_roles()
    comps, where, pooled = active_cells(
        trials, str(roles.subject), roles.comparators, (BETTER, WORSE), micro, usable
    )
    regime = judge_regime("all-active", comps, where)
    regime["pooled_summary"] = pooled
    return regime


def claim2_family(
    trials: pd.DataFrame, roles: FamilyRoles, micro: pd.DataFrame | None = None
) -> dict[str, Any]:
    """Claim 2 for one family (``RULES["claim2"]``); ``micro`` only for the Python family."""
    if trials.empty or roles.subject is None:
        regimes = [
            judge_regime("idle-heavy", [], "no data"),
            judge_regime("all-active", [], "no data"),
        ]
    else:
        usable = usable_trials(trials)  # once: the false-call tests run this thousands of times
        regimes = [
            regime_idle(trials, roles, micro, usable),
            regime_active(trials, roles, micro, usable),
        ]
    idle, active = (r["status"] for r in regimes)
    if idle == SUPPORTED and active == SUPPORTED:
        status = SUPPORTED
    elif SUPPORTED in (idle, active):
        status = PARTLY
    elif idle == NOT_SUPPORTED and active == NOT_SUPPORTED:
        status = NOT_SUPPORTED
    else:
        status = INCONCLUSIVE
    holds = [r["where"] for r in regimes if r["status"] == SUPPORTED]
    fails = [r["where"] for r in regimes if r["status"] == NOT_SUPPORTED]
    conditions = ("holds with " + "; ".join(holds) if holds else "holds in no measured regime") + (
        "; does not hold with " + "; ".join(fails) if fails else ""
    )
    summary = "; ".join(
        f"{r['regime']}: " + ", ".join(_short(c) for c in r["comparisons"])
        for r in regimes
        if r["comparisons"]
    )
    if summary:
        summary += (
            f" (other's server CPU per request / {roles.subject}'s, {EQUIVALENCE_CONFIDENCE:.0%} "
            "intervals, two one-sided tests against +-10%: a linear model on log values pooled "
            "over the sweep's cells with repetition and position effects, else paired t by "
            "repetition, else Welch; each cell's method in evidence)"
        )
    return {
        "id": "2",
        "claim": CLAIM_TEXT["2"],
        "status": status,
        "conditions": conditions,
        "summary": summary or "no regime had data",
        "reason": " | ".join(f"[{r['status']}] {r['reason']}" for r in regimes),
        "decided_by": [
            {"regime": r["regime"], "status": r["status"], **d}
            for r in regimes
            for d in r["decided_by"]
        ],
        "evidence": {"regimes": regimes},
        "regimes": [
            {"regime": r["regime"], "status": r["status"], "where": r["where"]} for r in regimes
        ],
    }


def regime_note(regimes: Sequence[dict[str, Any]]) -> str:
    """'idle-heavy SUPPORTED, no judged all-active cells' for the families' sentence."""
    bits = []
    for r in regimes:
        if not r["comparisons"]:
            bits.append(f"no {r['regime']} cells")
        elif not any(c["judged"] for c in r["comparisons"]):
            bits.append(f"no judged {r['regime']} cells")
        else:
            bits.append(f"{r['regime']} {r['status']}")
    return ", ".join(bits)


def _note(_roles: FamilyRoles, block: dict[str, Any]) -> str:
    return regime_note(block["evidence"]["regimes"])


def claim2(run: RunData) -> dict[str, Any]:
    """Claim 2 per family, with the overall status (``RULES["family_overall"]``)."""
    blocks = per_family(
        run.trials,
        lambda rows, roles, headline: claim2_family(rows, roles, run.micro if headline else None),
    )
    return assemble_claim(blocks, _note)


def _short(c: dict[str, Any]) -> str:
    d = c["decision"]
    level = c.get("idle_connections", c.get("active_connections"))
    judged = "" if c["judged"] else ", not judged"
    return (
        f"vs {c['backend']} at {int(level)}: {fmt(d['ratio'])}x [{fmt(d['ci_low'])}, "
        f"{fmt(d['ci_high'])}] {c['class']}{judged}"
    )
