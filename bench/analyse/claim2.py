"""Claim 2: is epoll more efficient than select and poll?

Judged in two regimes, because published work (Gammo et al., OLS 2004) and
measurements on the reference machine show the answer depends on it:
idle-heavy (idle-scaling at the idle count nearest 1,000, K active) and
all-active (active-scaling at every connection count all compared backends
share, pooled by geometric mean). epoll is "more efficient" than a backend when
the 95% interval of the ratio of medians (epoll/other throughput in closed
loop; else other/epoll CPU per request) lies above ``EFFECT_MARGIN`` (1.10,
i.e. at least 10% better); "not more efficient" when it lies below 1.10, or
when it includes 1 (no advantage shown at all) while the estimate is below
1.10 -- the claim asserts an advantage, so it needs evidence of one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from bench.analyse.rules import (
    CLAIM_TEXT,
    COMPARATORS,
    EFFECT_MARGIN,
    IDLE_HEAVY_TARGET_N,
    INCONCLUSIVE,
    MIN_REPS_PER_LEVEL,
    NOT_SUPPORTED,
    PARTLY,
    SUBJECT,
    SUPPORTED,
)
from bench.analyse.stats import bootstrap_pooled_ratio, nearest_level, usable_trials
from bench.store.results import RunData


def _compare_cells(
    rows: pd.DataFrame, level_col: str, levels: Sequence[float], other: str, closed: bool
) -> dict[str, Any]:
    """epoll vs ``other`` over the given cells (pooled by geometric mean when several)."""
    thr_pairs, cpu_pairs = [], []
    for level in levels:
        cell = rows[rows[level_col].astype(float) == level]
        ep = cell[cell["backend"] == SUBJECT]
        ot = cell[cell["backend"] == other]
        thr_pairs.append((ep["throughput_rps"].dropna(), ot["throughput_rps"].dropna()))
        cpu_pairs.append(
            (ot["server_cpu_us_per_req"].dropna(), ep["server_cpu_us_per_req"].dropna())
        )
    out: dict[str, Any] = {"backend": other, level_col: [float(v) for v in levels]}
    cpu = bootstrap_pooled_ratio(cpu_pairs)
    out["cpu_per_req_ratio_other_over_epoll"] = cpu.as_dict()
    primary, what = cpu, "CPU per request"
    if closed:
        thr = bootstrap_pooled_ratio(thr_pairs)
        out["throughput_ratio_epoll_over_other"] = thr.as_dict()
        if math.isfinite(thr.ratio):
            primary, what = thr, "throughput"
    out["primary"] = what
    n_min = min(primary.n_numerator, primary.n_denominator)
    if not math.isfinite(primary.ratio) or n_min < MIN_REPS_PER_LEVEL:
        out["class"] = "insufficient"
        out["class_reason"] = (
            f"epoll vs {other}: {n_min} usable repetition(s), need {MIN_REPS_PER_LEVEL}"
        )
        return out
    if primary.ci_low > EFFECT_MARGIN:
        out["class"] = "better"
    elif primary.ci_high < EFFECT_MARGIN or (
        primary.ci_low <= 1.0 and primary.ratio < EFFECT_MARGIN
    ):
        # Either a 10% advantage is ruled out, or no advantage at all is shown
        # (the interval includes 1) and the estimate is below the margin: the
        # claim asserts an advantage, so the burden of showing one is on it.
        out["class"] = "not better"
    else:
        out["class"] = "unclear"
    pooled = f", geometric mean over {len(levels)} cells" if len(levels) > 1 else ""
    out["class_reason"] = (
        f"epoll vs {other}: {primary.ratio:.2f}x [{primary.ci_low:.2f}, {primary.ci_high:.2f}] "
        f"({what}{pooled})"
    )
    return out


def _judge_regime(name: str, comps: list[dict[str, Any]], where: str) -> dict[str, Any]:
    classes = [c["class"] for c in comps]
    detail = "; ".join(c["class_reason"] for c in comps)
    if not comps:
        status, reason = INCONCLUSIVE, f"{name}: no cell shared by epoll and select/poll"
    elif all(c == "better" for c in classes):
        status, reason = (
            SUPPORTED,
            f"{name} ({where}): epoll at least {EFFECT_MARGIN:.2f}x better: {detail}",
        )
    elif all(c == "not better" for c in classes):
        status, reason = (
            NOT_SUPPORTED,
            f"{name} ({where}): no epoll advantage beyond {EFFECT_MARGIN:.2f}x: {detail}",
        )
    else:
        status, reason = INCONCLUSIVE, f"{name} ({where}): mixed or noisy: {detail}"
    return {
        "regime": name,
        "where": where,
        "status": status,
        "reason": reason,
        "comparisons": comps,
    }


def _regime_idle(trials: pd.DataFrame) -> dict[str, Any]:
    rows = usable_trials(trials)
    rows = rows[
        (rows["scenario"] == "idle-scaling") & (rows["server_rejected_fd_setsize"].fillna(0) == 0)
    ]
    closed = "closed" in set(rows["mode"].dropna())
    rows = rows[rows["mode"] == ("closed" if closed else "open")] if not rows.empty else rows
    comps = []
    where = "no idle-scaling data"
    ep_levels = set(rows[rows["backend"] == SUBJECT]["idle_connections"].dropna().astype(float))
    for other in COMPARATORS:
        shared = ep_levels & set(
            rows[rows["backend"] == other]["idle_connections"].dropna().astype(float)
        )
        level = nearest_level(list(shared), IDLE_HEAVY_TARGET_N)
        if level is None or level <= 0:
            continue
        comps.append(_compare_cells(rows, "idle_connections", [level], other, closed))
        active = sorted({int(a) for a in rows["active_connections"].dropna()})
        loop = "closed" if closed else "open"
        where = f"{int(level)} idle + {'/'.join(map(str, active))} active, {loop} loop"
    return _judge_regime("idle-heavy", comps, where)


def _regime_active(trials: pd.DataFrame) -> dict[str, Any]:
    usable = usable_trials(trials)
    rows = usable[usable["scenario"] == "active-scaling"]
    # A closed-loop idle-scaling cell with 0 idle is also "every connection
    # active" (K of them): pool it in unless active-scaling measured that count.
    zero_idle = usable[
        (usable["scenario"] == "idle-scaling")
        & (usable["idle_connections"] == 0)
        & (usable["mode"] == "closed")
        & ~usable["active_connections"].isin(rows["active_connections"])
    ]
    if not zero_idle.empty:
        rows = pd.concat([rows, zero_idle], ignore_index=True)
    closed = "closed" in set(rows["mode"].dropna())
    rows = rows[rows["mode"] == ("closed" if closed else "open")] if not rows.empty else rows
    comps = []
    where = "no active-scaling data"
    ep_levels = set(rows[rows["backend"] == SUBJECT]["active_connections"].dropna().astype(float))
    all_levels: dict[str, list[dict[str, Any]]] = {}
    for other in COMPARATORS:
        shared = ep_levels & set(
            rows[rows["backend"] == other]["active_connections"].dropna().astype(float)
        )
        if not shared:
            continue
        levels = sorted(shared)
        comps.append(_compare_cells(rows, "active_connections", levels, other, closed))
        all_levels[other] = [
            _compare_cells(rows, "active_connections", [lv], other, closed) for lv in levels
        ]
        where = (
            f"every connection active, {'/'.join(str(int(v)) for v in levels)} connections, "
            f"{'closed' if closed else 'open'} loop"
        )
    regime = _judge_regime("all-active", comps, where)
    regime["every_level"] = all_levels
    return regime


def claim2(run: RunData) -> dict[str, Any]:
    trials = run.trials
    if trials.empty:
        regimes = [
            _judge_regime("idle-heavy", [], "no data"),
            _judge_regime("all-active", [], "no data"),
        ]
    else:
        regimes = [_regime_idle(trials), _regime_active(trials)]
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
        f"{r['regime']}: " + ", ".join(c["class_reason"] for c in r["comparisons"])
        for r in regimes
        if r["comparisons"]
    )
    return {
        "id": "2",
        "claim": CLAIM_TEXT["2"],
        "status": status,
        "conditions": conditions,
        "summary": summary or "no regime had data",
        "reason": " | ".join(f"[{r['status']}] {r['reason']}" for r in regimes),
        "evidence": {"regimes": regimes},
        "regimes": [
            {"regime": r["regime"], "status": r["status"], "where": r["where"]} for r in regimes
        ],
    }
