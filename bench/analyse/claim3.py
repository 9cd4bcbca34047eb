"""Claim 3: does epoll slow down as the number of descriptors grows?

Every metric is judged and shown, with the same rule for every backend
(``RULES["flat"]``, ``RULES["claim3_metric"]``, ``RULES["claim3"]``):

(a) in-server wait-call cost per call in idle-scaling (the server thread's CPU
    time inside the call, so sleep is excluded; closed loop preferred);
(b) server CPU per request in idle-scaling (open loop preferred: the same
    request rate for every backend);
(c) the micro benchmark's cost of one wait call with one descriptor ready;
(d) closed-loop wall time per request (1 / throughput) in idle-scaling, with an
    account of where the added time goes when epoll's throughput falls.

Growth is fitted by ``bench.analyse.slopes`` (log scale, one block per
repetition) and classified by ``bench.analyse.flatness``. The claim's status
follows the rule written in advance: NOT SUPPORTED when any metric shows epoll
growing beyond 20% with confidence; SUPPORTED when none does and at least one
shows it flat with confidence on a sweep that showed select and poll growing;
INCONCLUSIVE otherwise. ``decided_by`` names the metrics and rules that decided.
Judged per family (``RULES["families"]``): "epoll", "select" and "poll" are the
family's backends of those mechanisms; the micro benchmarks (Python's select
module, in-process) count for the Python family only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bench.analyse.families import FamilyRoles, assemble_claim, headline_roles, per_family
from bench.analyse.flatness import (
    change_words,
    classify_fits,
    pct,
    slope_comparison,
    slope_words,
)
from bench.analyse.model import POSITION
from bench.analyse.rules import (
    CLAIM_TEXT,
    INCONCLUSIVE,
    NOT_SUPPORTED,
    SUPPORTED,
    TOLERANCE_REL_INCREASE,
)
from bench.analyse.slopes import (
    METHOD_MICRO_PROCESSES,
    SlopeFit,
    growth_fit,
    micro_growth_fit,
)
from bench.analyse.stats import micro_standard_error_us, usable_trials
from bench.measure.micro import PROCESS
from bench.measure.scenarios import idle_scaling
from bench.store.results import RunData
from servers import registry

WALL_PER_REQ = "wall_us_per_req"  # derived: 1e6 / throughput_rps (closed loop)
MICRO_LABEL = "micro wait call"
THROUGHPUT_LABEL = "closed-loop wall time per request (1/throughput)"
# (column, label, unit, loop modes in order of preference)
TRIAL_METRICS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    # Closed loop first: a busy server sleeps less, so each call's CPU time
    # carries less wake-up cost and more of the scan itself.
    (
        "server_wait_us_per_call",
        "in-server wait call (CPU time)",
        "us per call",
        ("closed", "open"),
    ),
    ("server_cpu_us_per_req", "server CPU per request", "us per request", ("open", "closed")),
    (WALL_PER_REQ, THROUGHPUT_LABEL, "us per request", ("closed",)),
)


def _idle_rows(
    trials: pd.DataFrame, metric: str, modes_allowed: Sequence[str], subject: str | None
) -> tuple[pd.DataFrame, str]:
    """Usable idle-scaling rows of the allowed mode with the most idle levels for the subject.

    Ties go to the first allowed mode. The wait cost per call is the server
    thread's CPU time inside the call (not wall time, which in open loop is
    mostly sleep until the next request), so either loop measures it.
    """
    rows = usable_trials(trials)
    rows = rows[rows["scenario"] == idle_scaling.NAME]
    # A select cell that had to reject descriptors >= 1024 does not measure its N.
    rows = rows[rows["server_rejected_fd_setsize"].fillna(0) == 0]
    if metric == WALL_PER_REQ:
        rows = rows.assign(**{WALL_PER_REQ: 1e6 / rows["throughput_rps"].astype(float)})
    rows = rows[rows[metric].notna()]

    def levels(mode: str) -> int:
        sub = rows[(rows["mode"] == mode) & (rows["backend"] == subject)]
        return int(sub["idle_connections"].nunique())

    mode = max(modes_allowed, key=lambda m: (levels(m), -list(modes_allowed).index(m)))
    return rows[rows["mode"] == mode], mode


def idle_scaling_fits(rows: pd.DataFrame, metric: str, x: str = "idle_connections") -> dict:
    """One growth fit per backend, repetitions as blocks and position as a term."""
    fits: dict[str, SlopeFit] = {}
    for backend, grp in rows.groupby("backend"):
        positions = grp[POSITION].astype(float).to_numpy() if POSITION in grp.columns else None
        fits[str(backend)] = growth_fit(
            grp[x].astype(float).to_numpy(),
            grp[metric].astype(float).to_numpy(),
            grp["repetition"].tolist(),
            positions,
        )
    return fits


def micro_fits(micro: pd.DataFrame, names: dict[str, str] | None = None) -> dict[str, SlopeFit]:
    """One growth fit per mechanism through the micro benchmarks with one descriptor ready.

    Each fresh process timed every count, so its per-count medians are one
    replicate and the process is the fit's block (``METHOD_MICRO_PROCESSES``). A
    table without processes (a run from before they existed) has one median per
    count and keeps the one-block fit with its standard-error floor
    (``METHOD_MICRO``); the method string in the evidence says which.
    Keyed by mechanism, or by ``names[mechanism]`` (a family's backend of that mechanism).
    """
    one = micro[micro["ready"] == "one"]
    fits = {}
    for mech, grp in one.groupby("mechanism"):
        key = (names or {}).get(str(mech), str(mech))
        process = grp[PROCESS] if PROCESS in grp.columns else pd.Series(pd.NA, index=grp.index)
        if process.notna().any():
            rows = grp[process.notna()]
            fit = growth_fit(
                rows["n_registered"].astype(float).to_numpy(),
                rows["median_us"].astype(float).to_numpy(),
                rows[PROCESS].astype(int).tolist(),
            )
            fits[key] = dataclasses.replace(fit, method=METHOD_MICRO_PROCESSES)
            continue
        fits[key] = micro_growth_fit(
            grp["n_registered"].astype(float).to_numpy(),
            grp["median_us"].astype(float).to_numpy(),
            micro_standard_error_us(grp).to_numpy(),
        )
    return fits


def judge_flatness(
    label: str,
    fits: dict[str, SlopeFit],
    need_reps: bool,
    unit: str,
    conditions: str,
    roles: FamilyRoles | None = None,
) -> dict[str, Any]:
    """One metric's status for claim 3, with every backend's fit and class as evidence."""
    roles = roles or headline_roles()
    subject, comparators = roles.subject, roles.comparators
    classes = classify_fits(fits, need_reps)
    per_backend = {}
    for backend, fit in sorted(fits.items()):
        cls = classes[backend]
        per_backend[backend] = {
            **fit.as_dict(),
            "slope_words": slope_words(fit, unit),
            "class": cls[0],
            "class_reason": cls[1],
        }
    evidence: dict[str, Any] = {"metric": label, "unit": unit, "conditions": conditions}
    evidence["backends"] = per_backend
    evidence["slope_comparison"] = slope_comparison(fits, subject, comparators)
    if subject not in classes:
        return {**evidence, "status": INCONCLUSIVE, "reason": f"{label}: no usable {subject} data"}
    ep_cls, ep_reason = classes[subject]
    comps = {b: classes[b] for b in comparators if b in classes}
    if ep_cls == "growing":
        status, reason = NOT_SUPPORTED, f"{label}: {subject} grows ({ep_reason})"
    elif ep_cls in ("insufficient", "unclear"):
        status, reason = INCONCLUSIVE, f"{label}: {subject} {ep_cls} ({ep_reason})"
    elif not comps:
        neither = " nor ".join(comparators) or "select nor poll"
        status, reason = INCONCLUSIVE, f"{label}: {subject} flat but neither {neither} measured"
    elif all(c == "growing" for c, _ in comps.values()):
        grow = "; ".join(f"{b} {r}" for b, (_, r) in comps.items())
        status, reason = SUPPORTED, f"{label}: {subject} flat ({ep_reason}); {grow}"
    else:
        weak = "; ".join(f"{b} {c} ({r})" for b, (c, r) in comps.items() if c != "growing")
        status = INCONCLUSIVE
        reason = f"{label}: {subject} flat but the sweep did not show growth for {weak}"
    return {**evidence, "status": status, "reason": reason}


def _geo(values: pd.Series) -> float:
    v = values.astype(float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.exp(np.log(v).mean())) if len(v) else float("nan")


def throughput_explanation(
    rows: pd.DataFrame, fit: SlopeFit | None, subject: str | None
) -> str | None:
    """Where the subject's added time per request goes when its closed-loop throughput falls."""
    if fit is None or not (math.isfinite(fit.rel_increase) and fit.rel_increase > 0):
        return None
    ep = rows[rows["backend"] == subject]
    lo = ep[ep["idle_connections"].astype(float) == fit.x_min]
    hi = ep[ep["idle_connections"].astype(float) == fit.x_max]
    if lo.empty or hi.empty:
        return None

    def parts(cell: pd.DataFrame) -> tuple[float, float, float, float]:
        wall = _geo(1e6 / cell["throughput_rps"].astype(float))
        cpu = _geo(cell["server_cpu_us_per_req"])
        per_req = (
            cell["server_wait_us_per_call"].astype(float)
            * cell["server_wait_calls"].astype(float)
            / cell["requests"].astype(float)
        )
        return _geo(cell["throughput_rps"]), wall, cpu, _geo(per_req)

    (t1, w1, c1, q1), (t2, w2, c2, q2) = parts(lo), parts(hi)
    text = (
        f"{subject}'s closed-loop throughput went from {t1:,.0f} to {t2:,.0f} requests/s between "
        f"{fit.x_min:.0f} and {fit.x_max:.0f} idle connections (geometric means), wall time per "
        f"request {w1:.1f} -> {w2:.1f} us"
    )
    if all(math.isfinite(v) for v in (c1, c2, q1, q2)) and w2 > w1:
        added = w2 - w1
        text += (
            f"; of the {added:.1f} us added, {q2 - q1:+.1f} us is inside the wait call, "
            f"{(c2 - q2) - (c1 - q1):+.1f} us is other server CPU per request and "
            f"{(w2 - c2) - (w1 - c1):+.1f} us is not server CPU (waiting for the client or "
            "the other CPU)"
        )
    return text


def _trial_metric(
    trials: pd.DataFrame, spec: tuple[str, str, str, tuple[str, ...]], roles: FamilyRoles
) -> dict:
    metric, label, unit, modes = spec
    rows, mode = (
        _idle_rows(trials, metric, modes, roles.subject) if not trials.empty else (trials, modes[0])
    )
    if rows.empty:
        only = f" in {mode} loop" if len(modes) == 1 else ""
        reason = f"{label}: no usable idle-scaling trials{only}"
        return {"metric": label, "status": INCONCLUSIVE, "reason": reason}
    active = sorted({int(a) for a in rows["active_connections"].dropna()})
    cond = f"idle-scaling, {mode} loop, {'/'.join(map(str, active))} active connections"
    fits = idle_scaling_fits(rows, metric)
    judged = judge_flatness(label, fits, True, unit, cond, roles)
    if metric == WALL_PER_REQ:
        why = throughput_explanation(rows, fits.get(str(roles.subject)), roles.subject)
        if why:
            judged["explanation"] = why
    return judged


def _micro_metric(micro: pd.DataFrame | None, roles: FamilyRoles) -> dict[str, Any]:
    if micro is None:
        reason = (
            "the micro benchmarks time Python's select module in-process: not measured for "
            f"the {roles.label} family"
        )
        return {"metric": MICRO_LABEL, "status": INCONCLUSIVE, "reason": reason}
    if micro.empty:
        return {"metric": MICRO_LABEL, "status": INCONCLUSIVE, "reason": "no micro benchmarks"}
    cond = "one wait call, timeout 0, one descriptor ready, socketpairs, level-triggered"
    names = {m: n for m, n in _mechanism_names(roles).items() if n is not None}
    fits = micro_fits(micro, names)
    return judge_flatness(MICRO_LABEL, fits, False, "us per call", cond, roles)


def _mechanism_names(roles: FamilyRoles) -> dict[str, str | None]:
    """The family's backend per micro mechanism (the micro table names mechanisms)."""
    out: dict[str, str | None] = {}
    for name in (roles.subject, *roles.comparators, roles.edge):
        if name is not None:
            out[registry.get(name).mechanism] = name
    return out


def claim3_family(
    trials: pd.DataFrame, roles: FamilyRoles, micro: pd.DataFrame | None = None
) -> dict[str, Any]:
    """Claim 3 for one family (``RULES["claim3"]``); ``micro`` only for the Python family."""
    metrics = [_trial_metric(trials, spec, roles) for spec in TRIAL_METRICS[:2]]
    metrics.append(_micro_metric(micro, roles))
    metrics.append(_trial_metric(trials, TRIAL_METRICS[2], roles))
    statuses = [m["status"] for m in metrics]
    if NOT_SUPPORTED in statuses:
        status = NOT_SUPPORTED
    elif SUPPORTED in statuses:
        status = SUPPORTED
    else:
        status = INCONCLUSIVE
    reason = " | ".join(f"[{m['status']}] {m['reason']}" for m in metrics)
    deciding = [m for m in metrics if status != INCONCLUSIVE and m["status"] == status]
    measured = [m.get("conditions") for m in deciding]
    conditions = (
        f"{roles.subject} flat means the 95% interval of its growth over the measured "
        f"descriptor range stays below {pct(TOLERANCE_REL_INCREASE)}, growing means it lies "
        "above; judged on: " + ("; ".join(c for c in measured if c) or "no metric decided")
    )
    return {
        "id": "3",
        "claim": CLAIM_TEXT["3"],
        "status": status,
        "conditions": conditions,
        "summary": _claim3_summary(metrics, roles),
        "reason": reason,
        "decided_by": [
            {
                "metric": m["metric"],
                "rules": ["claim3", "claim3_metric", "flat"],
                "reason": m["reason"],
            }
            for m in deciding
        ],
        "evidence": {"metrics": metrics},
    }


def _note(roles: FamilyRoles, block: dict[str, Any]) -> str:
    """'in-server wait call (CPU time): epoll flat; ...' for the families' sentence."""
    bits = []
    for m in block["evidence"]["metrics"]:
        fit = (m.get("backends") or {}).get(str(roles.subject))
        bits.append(f"{m['metric']}: {fit['class'] if fit else 'no data'}")
    return "; ".join(bits)


def claim3(run: RunData) -> dict[str, Any]:
    """Claim 3 per family, with the overall status (``RULES["family_overall"]``)."""
    blocks = per_family(
        run.trials,
        lambda rows, roles, headline: claim3_family(rows, roles, run.micro if headline else None),
    )
    return assemble_claim(blocks, _note)


def _claim3_summary(metrics: Sequence[dict[str, Any]], roles: FamilyRoles) -> str:
    subject, comparators = roles.subject, roles.comparators
    parts = []
    for m in metrics:
        backends = m.get("backends", {})
        if not backends:
            continue
        bits = []
        for b, v in backends.items():
            if b not in (*comparators, subject):
                continue
            words = change_words(v["projected_rel_increase"])
            if b == subject:
                lo = pct(v["projected_rel_increase_ci_low"])
                hi = pct(v["projected_rel_increase_ci_high"])
                words = f"{words} [{lo}, {hi}] ({v['class']})"
            bits.append(f"{b} {words}")
        parts.append(f"{m['metric']}: " + ", ".join(bits))
    return "; ".join(parts) + (
        f" (growth over each backend's measured range; {subject} with its 95% profile interval "
        "of the log-scale fit, repetitions as blocks, position in the repetition as a term)"
        if parts
        else ""
    )
