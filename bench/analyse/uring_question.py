"""The io_uring question, "does io_uring beat epoll?", per family and io_uring mechanism.

Not one of the blog post's claims, so verdict.json holds it beside them (``uring``).
The rules were written before any io_uring data (``bench.analyse.rules.uring``):
claim 2's cells (the idle-heavy cell nearest 1,000 idle connections and every
all-active count, ``RULES["regimes"]``) with the io_uring backend in epoll's place
and its baseline in the other's (readiness through io_uring against the family's
edge-triggered epoll, the completion server against its level-triggered epoll);
each cell is two one-sided tests at 5% against +-10% on the log scale
(``RULES["uring_cell"]``); a regime's status needs every judged cell to agree
(``RULES["uring_regime"]``); the answer per mechanism is YES, NO, PARTLY or
INCONCLUSIVE over the regimes that were judged (``RULES["uring"]``). The io_uring
backend's own growth of its wait call against idle descriptors (``RULES["uring_flat"]``)
is shown where idle-scaling measured it at enough counts, and decides nothing.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench.analyse.claim2 import active_cells, idle_cells
from bench.analyse.claim3 import WAIT_METRIC, idle_rows, idle_scaling_fits, planned_mode
from bench.analyse.edge_level import judge_cells
from bench.analyse.families import FamilyRoles, family_rows, judged_families
from bench.analyse.flatness import classify_fit
from bench.analyse.rules import EQUIVALENT, INCONCLUSIVE
from bench.analyse.rules.uring import (
    URING_BASELINE,
    URING_BETTER,
    URING_COMPLETION_MECHANISM,
    URING_CONFIDENCE,
    URING_DIFFER,
    URING_MARGIN,
    URING_NO,
    URING_PARTLY,
    URING_READINESS_MECHANISM,
    URING_WORSE,
    URING_YES,
)
from bench.store.results import RunData

QUESTION = "does io_uring beat epoll?"
URING_DECIDED = (EQUIVALENT, URING_BETTER, URING_WORSE)
RULE_NAMES = ["uring_cell", "uring_regime", "uring", "uring_overall", "regimes", "mechanism_cells"]
ANSWERS = (URING_YES, URING_NO, URING_PARTLY)
MECHANISM_WORDS = {
    URING_READINESS_MECHANISM: "io_uring readiness (multishot poll)",
    URING_COMPLETION_MECHANISM: "io_uring completion (multishot receive)",
}


def _regime(name: str, comps: list[dict[str, Any]], where: str) -> dict[str, Any]:
    status, why = judge_cells(comps, URING_DECIDED)
    detail = "; ".join(c["class_reason"] for c in comps)
    return {
        "regime": name,
        "where": where,
        "status": status,
        "judged": any(c["judged"] for c in comps),
        "reason": f"{name} ({where}): {why}" + (f": {detail}" if detail else ""),
        "comparisons": comps,
    }


def answer(regimes: list[dict[str, Any]]) -> tuple[str, str]:
    """YES | NO | PARTLY | INCONCLUSIVE over the judged regimes (``RULES["uring"]``), and why."""
    judged = [r for r in regimes if r["judged"]]
    if not judged:
        return INCONCLUSIVE, "no regime had a judged cell"
    undecided = [r["regime"] for r in judged if r["status"] not in URING_DECIDED]
    if undecided:
        return INCONCLUSIVE, f"undecided in {', '.join(undecided)}"
    better = [r["regime"] for r in judged if r["status"] == URING_BETTER]
    others = [f"{r['regime']} {r['status']}" for r in judged if r["status"] != URING_BETTER]
    if better and not others:
        return URING_YES, f"{URING_BETTER} in every judged regime ({', '.join(better)})"
    if not better:
        return URING_NO, f"equivalent or worse in every judged regime ({', '.join(others)})"
    return URING_PARTLY, f"{URING_BETTER} in {', '.join(better)}; {', '.join(others)}"


def _growth(trials: pd.DataFrame, backend: str) -> dict[str, Any] | None:
    """The io_uring backend's wait-call growth over idle-scaling (``RULES["uring_flat"]``)."""
    metric, label, _unit, modes = WAIT_METRIC
    mode = planned_mode(trials, backend, modes)
    if mode is None:
        return None
    rows = idle_rows(trials, metric, mode)
    fit = idle_scaling_fits(rows[rows["backend"] == backend], metric).get(backend)
    cls, reason = classify_fit(fit, True)
    return {"metric": label, "loop": mode, "class": cls, "reason": reason,
            "fit": fit.as_dict() if fit is not None else None}  # fmt: skip


def mechanism_block(trials: pd.DataFrame, roles: FamilyRoles, backend: str, mechanism: str,
                    baseline: str) -> dict[str, Any]:  # fmt: skip
    """One family's answer for one io_uring backend against its baseline."""
    labels = (URING_BETTER, URING_WORSE)
    idle, where_idle = idle_cells(trials, backend, (baseline,), labels)
    active, where_active, pooled = active_cells(trials, backend, (baseline,), labels)
    regimes = [_regime("idle-heavy", idle, where_idle), _regime("all-active", active, where_active)]
    regimes[1]["pooled_summary"] = pooled
    status, why = answer(regimes)
    comps = [c for r in regimes if r["judged"] for c in r["comparisons"] if c["judged"]]
    return {
        "family": roles.family,
        "label": roles.label,
        "mechanism": mechanism,
        "mechanism_words": MECHANISM_WORDS[mechanism],
        "backend": backend,
        "baseline": baseline,
        "status": status,
        "reason": f"{roles.label}, {backend} vs {baseline}: {why}",
        "regimes": regimes,
        "growth": _growth(trials, backend),
        "decided_by": [
            {"comparison": c["class_reason"], "rules": RULE_NAMES}
            for c in comps
            if status != INCONCLUSIVE
        ],
    }


def _pairs(roles: FamilyRoles) -> list[tuple[str, str, str]]:
    """(io_uring backend, mechanism, baseline backend) the family can answer with."""
    baselines = {"epoll-et": roles.edge, "epoll": roles.subject}
    out = []
    for backend, mechanism in (
        (roles.uring_poll, URING_READINESS_MECHANISM),
        (roles.uring_completion, URING_COMPLETION_MECHANISM),
    ):
        baseline = baselines[URING_BASELINE[mechanism]]
        if backend is not None and baseline is not None:
            out.append((backend, mechanism, baseline))
    return out


def uring_question(run: RunData) -> dict[str, Any]:
    """The ``uring`` entry of verdict.json: every family and io_uring mechanism measured."""
    trials = run.trials
    present = set(trials["backend"].dropna().astype(str)) if not trials.empty else set()
    judged = judged_families(trials)
    names = [r.family for r in judged]
    blocks: list[dict[str, Any]] = []
    absent: list[str] = []
    for roles in judged:
        rows = family_rows(trials, roles, names)
        for backend, mechanism, baseline in _pairs(roles):
            if {backend, baseline} <= present:
                blocks.append(mechanism_block(rows, roles, backend, mechanism, baseline))
            elif backend in present or baseline in present:
                absent.append(f"{backend} vs {baseline}: only one of them was measured")
    base = {
        "question": QUESTION,
        "margin": [1 / URING_MARGIN, URING_MARGIN],
        "confidence": URING_CONFIDENCE,
        "rules": RULE_NAMES,
        "not_answered": absent,
    }
    if not blocks:
        return {
            **base,
            "status": INCONCLUSIVE,
            "answers": [],
            "sentence": "no io_uring backend was measured beside its baseline in this run",
        }
    statuses = {b["status"] for b in blocks}
    status = statuses.pop() if len(statuses) == 1 else URING_DIFFER
    sentence = "; ".join(
        f"{b['label']} {b['mechanism_words']} ({b['backend']} vs {b['baseline']}): {b['status']}"
        for b in blocks
    )
    return {**base, "status": status, "answers": blocks, "sentence": sentence}
