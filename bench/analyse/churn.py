"""Does epoll's advantage survive connection churn? Server CPU per new connection, per idle level.

Per family (``bench.analyse.families``) and per idle level of the churn
scenario (open loop, a new connection per request at a fixed rate, idle
connections held beside them), the ratio the other's CPU per new connection
/ epoll's, paired by repetition (``bench.analyse.intervals.ratio_interval``),
classified like claim 2's cells (``bench.analyse.claim2.classify_ratio``:
a 90% interval, i.e. two one-sided tests at 5%, against +-10%): epoll
better, EQUIVALENT, epoll worse or INCONCLUSIVE. The answer follows
``RULES["churn"]``. Only usable trials count (no fault).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench.analyse.claim2 import classify_ratio
from bench.analyse.families import FamilyRoles, judged_families, overall_status
from bench.analyse.intervals import geometric_mean_interval, ratio_interval
from bench.analyse.rules import (
    BETTER,
    CHURN_NO,
    CHURN_PARTLY,
    CHURN_YES,
    CONFIDENCE,
    EQUIVALENCE_CONFIDENCE,
    EQUIVALENT,
    FAMILIES_DIFFER,
    INCONCLUSIVE,
    RULES,
    WORSE,
)
from bench.analyse.stats import usable_trials
from bench.measure.scenarios import churn as churn_scenario
from bench.store.results import RunData

METRIC = churn_scenario.CPU_PER_CONN
YES, NO, PARTLY = CHURN_YES, CHURN_NO, CHURN_PARTLY
DECIDED = (YES, NO, PARTLY)
# The rules, in words, for verdict.json and the report (texts in bench.analyse.rules).
CHURN_RULE_NAMES = ("churn_cell", "churn")
CHURN_RULES: dict[str, str] = {name: RULES[name] for name in CHURN_RULE_NAMES}


def churn_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """Usable churn trials that measured the server's CPU per new connection."""
    rows = usable_trials(trials)
    if rows.empty or METRIC not in rows.columns:
        return rows.iloc[0:0]
    return rows[(rows["scenario"] == churn_scenario.NAME) & rows[METRIC].notna()]


def compare(rows: pd.DataFrame, idle: int, subject: str, other: str) -> dict[str, Any]:
    """``other`` against ``subject`` (epoll) at one idle level."""
    cell = rows[rows["idle_connections"].astype(int) == idle]
    ot, ep = cell[cell["backend"] == other], cell[cell["backend"] == subject]
    args = (
        ot[METRIC].astype(float).tolist(), ep[METRIC].astype(float).tolist(),
        ot["repetition"].tolist(), ep["repetition"].tolist(),
    )  # fmt: skip
    decision = ratio_interval(*args, confidence=EQUIVALENCE_CONFIDENCE)
    shown = ratio_interval(*args, confidence=CONFIDENCE)
    cls = classify_ratio(decision)
    medians = {b: float(g[METRIC].median()) for b, g in ((other, ot), (subject, ep)) if len(g)}
    return {
        "idle_connections": idle,
        "backend": other,
        "ratio_definition": f"{other}'s server CPU per new connection / {subject}'s",
        "median_cpu_us_per_conn": medians,
        "decision": decision.as_dict(),
        "interval_95": shown.as_dict(),
        "class": cls,
        "reason": (
            f"{other} / {subject} CPU per new connection at {idle:,} idle: "
            f"{decision.ratio:.3g}x [{decision.ci_low:.3g}, {decision.ci_high:.3g}] "
            f"({EQUIVALENCE_CONFIDENCE:.0%} {decision.method.split(' interval')[0]} interval) "
            f"-> {cls}"
        ),
    }


def _costs(at: pd.DataFrame, backends: list[str]) -> dict[str, dict[str, float | int]]:
    """Each backend's CPU per new connection at one idle level: geometric mean, 95% t interval."""
    out = {}
    for b in backends:
        values = at[at["backend"] == b][METRIC].astype(float).tolist()
        if values:
            geo = geometric_mean_interval(values)
            out[b] = {"geo_mean": geo.estimate, "ci_low": geo.ci_low, "ci_high": geo.ci_high,
                      "n": geo.n}  # fmt: skip
    return out


def level_status(comps: list[dict[str, Any]]) -> str:
    """'keeps' | 'loses' | 'undecided' for one idle level (``CHURN_RULES['churn']``)."""
    classes = [c["class"] for c in comps]
    if classes and all(c == BETTER for c in classes):
        return "keeps"
    if classes and all(c in (EQUIVALENT, WORSE) for c in classes):
        return "loses"
    return "undecided"


def family_answer(rows: pd.DataFrame, roles: FamilyRoles) -> dict[str, Any] | None:
    """The family's comparisons per idle level and its answer; None without epoll data."""
    present = set(rows["backend"])
    subject = roles.subject
    others = [o for o in roles.comparators if o in present]
    if subject is None or subject not in present or not others:
        return None
    levels = []
    for idle in sorted({int(v) for v in rows["idle_connections"].dropna()}):
        at = rows[rows["idle_connections"].astype(int) == idle]
        comps = [compare(rows, idle, subject, o) for o in others if o in set(at["backend"])]
        if subject in set(at["backend"]) and comps:
            levels.append({"idle_connections": idle, "status": level_status(comps),
                           "cpu_us_per_conn": _costs(at, [subject, *others]),
                           "comparisons": comps})  # fmt: skip
    deciding = [lv for lv in levels if lv["idle_connections"] > 0]
    keeps = [lv["idle_connections"] for lv in deciding if lv["status"] == "keeps"]
    loses = [lv["idle_connections"] for lv in deciding if lv["status"] == "loses"]
    if not deciding or len(keeps) + len(loses) < len(deciding):
        answer = INCONCLUSIVE
    elif not loses:
        answer = YES
    elif not keeps:
        answer = NO
    else:
        answer = PARTLY
    return {
        "family": roles.family,
        "label": roles.label,
        "subject": subject,
        "answer": answer,
        "sentence": sentence(roles.label, subject, answer, levels),
        "levels": levels,
    }


def _short(c: dict[str, Any]) -> str:
    d = c["decision"]
    return f"{c['backend']} {d['ratio']:.2f}x [{d['ci_low']:.2f}, {d['ci_high']:.2f}] {c['class']}"


def sentence(label: str, subject: str, answer: str, levels: list[dict[str, Any]]) -> str:
    """One sentence: the family's answer and the ratios behind it."""
    parts = [
        f"{lv['idle_connections']:,} idle: " + ", ".join(_short(c) for c in lv["comparisons"])
        for lv in levels
    ]
    words = {
        YES: f"yes, {subject} spends less CPU per new connection at every idle level above 0",
        NO: f"no, {subject} spends no less CPU per new connection at any idle level above 0",
        PARTLY: f"partly, {subject} keeps its advantage at some idle levels only",
        INCONCLUSIVE: "inconclusive, not every idle level above 0 was decided",
    }[answer]
    detail = "; ".join(parts) if parts else "no churn data"
    return (
        f"{label}: {words} (other's CPU per new connection / {subject}'s, "
        f"{EQUIVALENCE_CONFIDENCE:.0%} paired intervals: {detail})."
    )


def churn(run: RunData | pd.DataFrame) -> dict[str, Any]:
    """The churn section: does epoll's advantage survive churn, per family and overall."""
    trials = run.trials if isinstance(run, RunData) else run
    rows = churn_rows(trials) if not trials.empty else trials
    families = []
    if not rows.empty:
        for roles in judged_families(rows):
            block = family_answer(rows, roles)
            if block is not None:
                families.append(block)
    answers = [f["answer"] for f in families]
    overall = overall_status(answers, decided=DECIDED, differ=FAMILIES_DIFFER)
    text = " ".join(f["sentence"] for f in families) or "No usable churn trials."
    return {
        "question": "Does epoll's advantage survive connection churn?",
        "answer": overall,
        "sentence": f"Does epoll's advantage survive churn? {overall}. {text}",
        "families": families,
        "rules": CHURN_RULES,
        "metric": METRIC,
    }
