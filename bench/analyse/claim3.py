"""Claim 3: does epoll slow down as the number of descriptors grows?

Metrics: (a) in-server wait-call cost per call in idle-scaling (the server
thread's CPU time inside the call, so sleep is excluded), (b) server CPU per
request in idle-scaling (open loop preferred: the same request rate for every
backend), (c) the micro benchmark's cost of one wait call with one descriptor
ready, against registered descriptors. Each is classified per backend by
``bench.analyse.flatness``.

Claim 3 is SUPPORTED when epoll is flat on a metric while every measured one of
select and poll grows on it; NOT SUPPORTED when epoll grows on any metric;
INCONCLUSIVE otherwise (too few levels or repetitions, too noisy, or the
comparison backends did not grow either, which means the sweep could not have
shown a difference). The same yardstick is used for select and poll, so "epoll
flat while select and poll grow" compares like with like.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from bench.analyse.flatness import change_words, classify_fits, pct
from bench.analyse.rules import (
    CLAIM_TEXT,
    COMPARATORS,
    INCONCLUSIVE,
    NOT_SUPPORTED,
    RELATIVE_SLOPE_FRACTION,
    SUBJECT,
    SUPPORTED,
    TOLERANCE_REL_INCREASE,
)
from bench.analyse.stats import (
    CONFIDENCE,
    SlopeFit,
    bootstrap_slope,
    micro_standard_error_us,
    parametric_slope,
    usable_trials,
)
from bench.store.results import RunData


def _idle_rows(
    trials: pd.DataFrame, metric: str, modes_allowed: Sequence[str]
) -> tuple[pd.DataFrame, str]:
    """Usable idle-scaling rows of the allowed mode with the most idle levels for epoll.

    Ties go to the first allowed mode. The wait cost per call is the server
    thread's CPU time inside the call (not wall time, which in open loop is
    mostly sleep until the next request), so either loop measures it.
    """
    rows = usable_trials(trials)
    rows = rows[rows["scenario"] == "idle-scaling"]
    # A select cell that had to reject descriptors >= 1024 does not measure its N.
    rows = rows[rows["server_rejected_fd_setsize"].fillna(0) == 0]
    rows = rows[rows[metric].notna()]

    def levels(mode: str) -> int:
        sub = rows[(rows["mode"] == mode) & (rows["backend"] == SUBJECT)]
        return int(sub["idle_connections"].nunique())

    mode = max(modes_allowed, key=lambda m: (levels(m), -list(modes_allowed).index(m)))
    return rows[rows["mode"] == mode], mode


def judge_flatness(
    label: str, fits: dict[str, SlopeFit], need_reps: bool, unit: str, conditions: str
) -> dict[str, Any]:
    """One metric's status for claim 3, with every backend's fit and class as evidence."""
    classes = classify_fits(fits, need_reps)
    per_backend = {}
    for backend, fit in sorted(fits.items()):
        cls = classes[backend]
        per_backend[backend] = {**fit.as_dict(), "class": cls[0], "class_reason": cls[1]}
    evidence: dict[str, Any] = {"metric": label, "unit": unit, "conditions": conditions}
    evidence["backends"] = per_backend
    sel = fits.get("select")
    ep = fits.get(SUBJECT)
    if sel is not None and ep is not None and math.isfinite(sel.slope) and sel.slope > 0:
        evidence["epoll_slope_over_select_slope"] = float(f"{ep.slope / sel.slope:.3g}")
    if SUBJECT not in classes:
        return {**evidence, "status": INCONCLUSIVE, "reason": f"{label}: no usable epoll data"}
    ep_cls, ep_reason = classes[SUBJECT]
    comps = {b: classes[b] for b in COMPARATORS if b in classes}
    if ep_cls == "growing":
        status, reason = NOT_SUPPORTED, f"{label}: epoll grows ({ep_reason})"
    elif ep_cls in ("insufficient", "unclear"):
        status, reason = INCONCLUSIVE, f"{label}: epoll {ep_cls} ({ep_reason})"
    elif not comps:
        status, reason = INCONCLUSIVE, f"{label}: epoll flat but neither select nor poll measured"
    elif all(c == "growing" for c, _ in comps.values()):
        grow = "; ".join(f"{b} {r}" for b, (_, r) in comps.items())
        status, reason = SUPPORTED, f"{label}: epoll flat ({ep_reason}); {grow}"
    else:
        weak = "; ".join(f"{b} {c} ({r})" for b, (c, r) in comps.items() if c != "growing")
        status = INCONCLUSIVE
        reason = f"{label}: epoll flat but the sweep did not show growth for {weak}"
    return {**evidence, "status": status, "reason": reason}


def _trial_fits(rows: pd.DataFrame, metric: str) -> dict[str, SlopeFit]:
    fits = {}
    for backend, grp in rows.groupby("backend"):
        fits[str(backend)] = bootstrap_slope(
            grp["idle_connections"].astype(float).to_numpy(), grp[metric].astype(float).to_numpy()
        )
    return fits


def _micro_fits(micro: pd.DataFrame) -> dict[str, SlopeFit]:
    one = micro[micro["ready"] == "one"]
    fits = {}
    for mech, grp in one.groupby("mechanism"):
        fits[str(mech)] = parametric_slope(
            grp["n_registered"].astype(float).to_numpy(),
            grp["median_us"].astype(float).to_numpy(),
            micro_standard_error_us(grp).to_numpy(),
        )
    return fits


def claim3(run: RunData) -> dict[str, Any]:
    metrics = []
    trials = run.trials
    specs: list[tuple[str, str, str, tuple[str, ...]]] = [
        (
            "server_wait_us_per_call",
            "in-server wait call (CPU time)",
            "us per call per fd",
            # Closed loop first: a busy server sleeps less, so each call's CPU
            # time carries less wake-up cost and more of the scan itself.
            ("closed", "open"),
        ),
        (
            "server_cpu_us_per_req",
            "server CPU per request",
            "us per req per fd",
            ("open", "closed"),
        ),
    ]
    for metric, label, unit, modes in specs:
        rows, mode = _idle_rows(trials, metric, modes) if not trials.empty else (trials, modes[0])
        if rows.empty:
            only = f" in {mode} loop" if len(modes) == 1 else ""
            reason = f"{label}: no usable idle-scaling trials{only}"
            metrics.append({"metric": label, "status": INCONCLUSIVE, "reason": reason})
            continue
        active = sorted({int(a) for a in rows["active_connections"].dropna()})
        cond = f"idle-scaling, {mode} loop, {'/'.join(map(str, active))} active connections"
        metrics.append(judge_flatness(label, _trial_fits(rows, metric), True, unit, cond))
    if run.micro.empty:
        metrics.append(
            {"metric": "micro wait call", "status": INCONCLUSIVE, "reason": "no micro benchmarks"}
        )
    else:
        cond = "one wait call, timeout 0, one descriptor ready, socketpairs, level-triggered"
        metrics.append(
            judge_flatness(
                "micro wait call", _micro_fits(run.micro), False, "us per descriptor", cond
            )
        )
    statuses = [m["status"] for m in metrics]
    if NOT_SUPPORTED in statuses:
        status = NOT_SUPPORTED
    elif SUPPORTED in statuses:
        status = SUPPORTED
    else:
        status = INCONCLUSIVE
    reason = " | ".join(f"[{m['status']}] {m['reason']}" for m in metrics)
    decisive = SUPPORTED if status == SUPPORTED else NOT_SUPPORTED
    measured = [m.get("conditions") for m in metrics if m["status"] == decisive]
    conditions = (
        f"epoll flat means a projected increase below {pct(TOLERANCE_REL_INCREASE)} over the "
        f"measured descriptor range ({int(CONFIDENCE * 100)}% CI), or a slope surely under "
        f"{RELATIVE_SLOPE_FRACTION:.0%} of select's and poll's; judged on: "
        + ("; ".join(c for c in measured if c) or "no metric had enough data")
    )
    return {
        "id": "3",
        "claim": CLAIM_TEXT["3"],
        "status": status,
        "conditions": conditions,
        "summary": _claim3_summary(metrics),
        "reason": reason,
        "evidence": {"metrics": metrics},
    }


def _claim3_summary(metrics: Sequence[dict[str, Any]]) -> str:
    parts = []
    for m in metrics:
        backends = m.get("backends", {})
        if not backends:
            continue
        bits = [
            f"{b} {change_words(v['projected_rel_increase'])}"
            for b, v in backends.items()
            if b in (*COMPARATORS, SUBJECT)
        ]
        parts.append(f"{m['metric']}: " + ", ".join(bits))
    return "; ".join(parts) + (
        " (projected change over each backend's measured range)" if parts else ""
    )
