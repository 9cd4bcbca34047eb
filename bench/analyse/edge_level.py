"""Edge- against level-triggered epoll, per family that has both (issue 12, item 4).

Not one of the blog post's claims, so verdict.json holds it beside them
(``edge_vs_level``). The cells are claim 2's (``bench.analyse.claim2``: the
idle-heavy cell nearest 1,000 idle connections and every all-active count),
with the family's epoll-et backend in epoll's place and its epoll backend in the
other's; each cell is two one-sided tests at 5% against +-10% on the log scale
(``RULES["edge_vs_level"]``): EQUIVALENT, edge better, edge worse or
INCONCLUSIVE. A family's status needs every judged cell to agree
(``RULES["edge_vs_level_family"]``); the families combine by
``RULES["edge_vs_level_overall"]``. The edge-triggered backend's own growth
against descriptors (claim 3's fits) is shown beside it and decides nothing.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench.analyse.claim2 import active_cells, idle_cells, regime_note
from bench.analyse.families import (
    FamilyRoles,
    agreement_sentence,
    family_rows,
    judged_families,
    overall_status,
)
from bench.analyse.rules import (
    EDGE_BETTER,
    EDGE_CONFIDENCE,
    EDGE_EFFECT_MARGIN,
    EDGE_WORSE,
    EQUIVALENT,
    FAMILIES_DIFFER,
    INCONCLUSIVE,
)
from bench.store.results import RunData

QUESTION = "edge-triggered vs level-triggered epoll"
EDGE_DECIDED = (EQUIVALENT, EDGE_BETTER, EDGE_WORSE)
RULE_NAMES = ["edge_vs_level", "edge_vs_level_family", "regimes", "mechanism_cells"]


def judge_cells(
    comps: list[dict[str, Any]], decided_classes: tuple[str, ...] = EDGE_DECIDED
) -> tuple[str, str]:
    """The status of a set of cells (``RULES["edge_vs_level_family"]``, and the io_uring
    question's ``RULES["uring_regime"]`` with its own classes) and why."""
    judged = [c for c in comps if c["judged"]]
    if not judged:
        return INCONCLUSIVE, "no cell could be judged"
    classes = {c["class"] for c in judged}
    if len(classes) == 1 and (cls := classes.pop()) in decided_classes:
        return cls, f"{cls} in every judged cell ({len(judged)})"
    decided = {c["class"] for c in judged if c["class"] in decided_classes}
    if len(decided) > 1:
        return INCONCLUSIVE, "judged cells decided in different ways: " + ", ".join(sorted(decided))
    return INCONCLUSIVE, "not every judged cell decided"


def _regime(name: str, comps: list[dict[str, Any]], where: str) -> dict[str, Any]:
    status, why = judge_cells(comps)
    detail = "; ".join(c["class_reason"] for c in comps)
    return {
        "regime": name,
        "where": where,
        "status": status,
        "reason": f"{name} ({where}): {why}" + (f": {detail}" if detail else ""),
        "comparisons": comps,
    }


def edge_family(trials: pd.DataFrame, roles: FamilyRoles) -> dict[str, Any]:
    """One family's edge-vs-level block: its cells, regimes and status."""
    edge, level = str(roles.edge), str(roles.subject)
    labels = (EDGE_BETTER, EDGE_WORSE)
    if trials.empty:
        regimes = [_regime("idle-heavy", [], "no data"), _regime("all-active", [], "no data")]
    else:
        idle, where_idle = idle_cells(trials, edge, (level,), labels)
        active, where_active, pooled = active_cells(trials, edge, (level,), labels)
        regimes = [
            _regime("idle-heavy", idle, where_idle),
            _regime("all-active", active, where_active),
        ]
        regimes[1]["pooled_summary"] = pooled
    comps = [c for r in regimes for c in r["comparisons"]]
    status, why = judge_cells(comps)
    return {
        "family": roles.family,
        "label": roles.label,
        "edge": edge,
        "level": level,
        "status": status,
        "reason": f"{roles.label}, {edge} vs {level}: {why}",
        "regimes": regimes,
        "decided_by": [
            {"comparison": c["class_reason"], "rules": RULE_NAMES}
            for c in comps
            if c["judged"] and status != INCONCLUSIVE
        ],
    }


def _note(block: dict[str, Any]) -> str:
    return regime_note(block["regimes"])


def _growth(claim3: dict[str, Any] | None, family: str, edge: str) -> dict[str, str]:
    """The edge backend's class per claim-3 metric (shown; decides nothing)."""
    block = ((claim3 or {}).get("families") or {}).get(family) or {}
    out = {}
    for m in (block.get("evidence") or {}).get("metrics", []):
        fit = (m.get("backends") or {}).get(edge)
        if fit:
            out[m["metric"]] = fit["class"]
    return out


def edge_vs_level(run: RunData, claim3: dict[str, Any] | None = None) -> dict[str, Any]:
    """The edge-vs-level entry of verdict.json, for every family that has both backends."""
    trials = run.trials
    present = set(trials["backend"].dropna().astype(str)) if not trials.empty else set()
    judged = judged_families(trials)
    names = [r.family for r in judged]
    blocks = []
    for roles in judged:
        if roles.edge is None or roles.subject is None:
            continue
        if not {roles.edge, roles.subject} <= present:
            continue
        block = edge_family(family_rows(trials, roles, names), roles)
        block["edge_growth"] = _growth(claim3, roles.family, roles.edge)
        blocks.append(block)
    base = {
        "question": QUESTION,
        "margin": [1 / EDGE_EFFECT_MARGIN, EDGE_EFFECT_MARGIN],
        "confidence": EDGE_CONFIDENCE,
        "rules": [*RULE_NAMES, "edge_vs_level_overall"],
    }
    if not blocks:
        return {
            **base,
            "status": INCONCLUSIVE,
            "family_agreement": (
                "no family had both an edge-triggered and a level-triggered epoll backend in "
                "this run"
            ),
            "families": {},
        }
    statuses = [b["status"] for b in blocks]
    entries = [(b["label"], b["status"], _note(b)) for b in blocks]
    return {
        **base,
        "status": overall_status(statuses, EDGE_DECIDED, FAMILIES_DIFFER),
        "family_agreement": agreement_sentence(entries, EDGE_DECIDED, (INCONCLUSIVE,)),
        "families": {b["family"]: b for b in blocks},
    }
