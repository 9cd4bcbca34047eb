"""The A/A check's false calls: what the verdict said about one server declared three times.

A calibration run (``bench run --calibrate``) measures the same-server family
(``servers.calibration_backends``): its select, poll and epoll are one server,
so the truth is "EQUIVALENT everywhere, nothing grows", and every call the
verdict makes otherwise is false (``bench.analyse.rules.CALIBRATION_RULES``). This module reads a
family's blocks of claims 2 and 3 (and edge vs level, when the family has an
edge-triggered member) as ``verdict.json`` holds them, or as the claim
functions return them, and lists each check with its outcome: the calibration
summary of a run, the tally of ``bench calibration`` over runs, and the
synthetic false-call tests all read the same checks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.analyse.claim2 import BETTER, WORSE
from bench.analyse.rules import EQUIVALENT, INCONCLUSIVE, NOT_SUPPORTED, PARTLY, SUPPORTED
from servers.registry import FAMILY_SAME_SERVER

GROWING = "growing"  # bench.analyse.flatness's class of a fit that grows
# Rule names of the checks, in the order a summary lists them.
CLAIM2, CLAIM2_REGIME, EQUIVALENCE = "claim2", "claim2_regime", "equivalence"
CLAIM3, FLAT, EDGE = "claim3", "flat", "edge_vs_level"
RULE_ORDER = (CLAIM2, CLAIM2_REGIME, EQUIVALENCE, CLAIM3, FLAT, EDGE)
# What a false call under each rule is, in the words a tally prints.
FALSE_CALL_WORDS = {
    CLAIM2: "claim 2 SUPPORTED or PARTLY SUPPORTED",
    CLAIM2_REGIME: "a claim-2 regime SUPPORTED",
    EQUIVALENCE: "a judged comparison called 'epoll better' or 'epoll worse'",
    CLAIM3: "claim 3 NOT SUPPORTED",
    FLAT: "a backend's growth on a claim-3 metric called 'growing'",
    EDGE: "edge vs level decided other than EQUIVALENT",
}


@dataclass(frozen=True)
class Check:
    """One call the verdict made about an A/A family, and whether it is false."""

    key: str
    """Names the call the same way in every run ('claim 2 all-active: ... at 100 active')."""
    rule: str
    outcome: str
    false_call: bool


def _level(c: Mapping[str, Any]) -> str:
    if c.get("idle_connections") is not None:
        return f"{int(c['idle_connections'])} idle"
    return f"{int(c.get('active_connections') or 0)} active"


def claim2_checks(block: Mapping[str, Any], subject: str) -> list[Check]:
    """Claim 2's status, each regime's, and each judged comparison's class."""
    status = str(block.get("status"))
    out = [Check("claim 2", CLAIM2, status, status in (SUPPORTED, PARTLY))]
    for r in (block.get("evidence") or {}).get("regimes", []):
        name = r.get("regime")
        out.append(
            Check(f"claim 2 {name}", CLAIM2_REGIME, str(r["status"]), r["status"] == SUPPORTED)
        )
        for c in r.get("comparisons", []):
            if not c.get("judged", True):
                continue  # shown, decides nothing (RULES['mechanism_cells'])
            key = (
                f"claim 2 {name}: {subject} vs {c['backend']} at {_level(c)}, "
                f"{c.get('loop', '?')} loop"
            )
            d = c.get("decision") or {}
            shown = f"{c['class']} ({_ratio_words(d)})" if d else str(c["class"])
            out.append(Check(key, EQUIVALENCE, shown, c["class"] in (BETTER, WORSE)))
    return out


def _ratio_words(d: Mapping[str, Any]) -> str:
    def f(x: Any) -> str:
        return "n/a" if x is None or not math.isfinite(float(x)) else f"{float(x):.3g}"

    return f"{f(d.get('ratio'))}x [{f(d.get('ci_low'))}, {f(d.get('ci_high'))}]"


def claim3_checks(block: Mapping[str, Any], subject: str) -> list[Check]:
    """Claim 3's status for the family's epoll, and every backend's growth class per metric."""
    status = str(block.get("status"))
    out = [Check(f"claim 3 ({subject})", CLAIM3, status, status == NOT_SUPPORTED)]
    for m in (block.get("evidence") or {}).get("metrics", []):
        for backend, fit in sorted((m.get("backends") or {}).items()):
            cls = str(fit.get("class"))
            key = f"claim 3 {m['metric']}: {backend}"
            out.append(Check(key, FLAT, cls, cls == GROWING))
    return out


def edge_checks(block: Mapping[str, Any] | None) -> list[Check]:
    """Edge vs level, when the family has both: anything decided but EQUIVALENT is false."""
    if not block:
        return []
    status = str(block.get("status"))
    decided = status not in (INCONCLUSIVE, EQUIVALENT)
    return [Check("edge vs level", EDGE, status, decided)]


def _claim(verdict: Mapping[str, Any], claim_id: str) -> Mapping[str, Any]:
    return next((c for c in verdict.get("claims", []) if str(c.get("id")) == claim_id), {})


def verdict_checks(verdict: Mapping[str, Any], family: str = FAMILY_SAME_SERVER) -> list[Check]:
    """Every check of ``family`` in a verdict document; [] when the family was not judged."""
    blocks = {cid: (_claim(verdict, cid).get("families") or {}).get(family) for cid in "23"}
    if not any(blocks.values()):
        return []
    out: list[Check] = []
    if blocks["2"]:
        out += claim2_checks(blocks["2"], _subject(blocks["2"]))
    if blocks["3"]:
        out += claim3_checks(blocks["3"], _subject(blocks["3"]))
    edge = ((verdict.get("edge_vs_level") or {}).get("families") or {}).get(family)
    return out + edge_checks(edge)


def _subject(block: Mapping[str, Any]) -> str:
    return str((block.get("roles") or {}).get("subject") or "epoll")


def format_checks(checks: Sequence[Check], family_label: str = "same-server") -> str:
    """The calibration summary of one run: each false call, then what was called right."""
    if not checks:
        return f"calibration: the {family_label} family was not judged in this run"
    false = [c for c in checks if c.false_call]
    lines = [
        f"calibration (A/A, {family_label} family: one server as select, poll and epoll): "
        f"{len(false)} false call(s) in {len(checks)} checks"
    ]
    for c in sorted(checks, key=lambda c: (RULE_ORDER.index(c.rule), not c.false_call)):
        lines.append(f"  {'FALSE' if c.false_call else 'ok   '} {c.key}: {c.outcome}")
    return "\n".join(lines)


@dataclass(frozen=True)
class TallyRow:
    """How many of the runs made one false call (or any false call under one rule)."""

    key: str
    rule: str
    runs_checked: int
    runs_false: tuple[str, ...]


def tally(runs: Iterable[tuple[str, Sequence[Check]]]) -> tuple[list[TallyRow], list[TallyRow]]:
    """(per rule: runs with any false call under it; per check: runs that made it false)."""
    per_key: dict[str, tuple[str, list[str], list[str]]] = {}
    per_rule: dict[str, tuple[list[str], list[str]]] = {}
    for run_id, checks in runs:
        for rule in {c.rule for c in checks}:
            seen, false = per_rule.setdefault(rule, ([], []))
            seen.append(run_id)
            if any(c.false_call for c in checks if c.rule == rule):
                false.append(run_id)
        for c in checks:
            _, seen, false = per_key.setdefault(c.key, (c.rule, [], []))
            seen.append(run_id)
            if c.false_call:
                false.append(run_id)
    rules = [
        TallyRow(rule, rule, len(seen), tuple(false))
        for rule in RULE_ORDER
        if rule in per_rule
        for seen, false in [per_rule[rule]]
    ]
    keys = [
        TallyRow(key, rule, len(seen), tuple(false))
        for key, (rule, seen, false) in sorted(
            per_key.items(), key=lambda kv: (RULE_ORDER.index(kv[1][0]), kv[0])
        )
    ]
    return rules, keys
