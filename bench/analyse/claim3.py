"""Claim 3: does epoll slow down as the number of descriptors grows?

Primary metrics, fixed before the data (``RULES["claim3"]``):

(a) the micro benchmark's cost of one wait call with one descriptor ready
    (Python's select module in-process, so the Python family only);
(b) the in-server wait call's CPU time per call in idle-scaling (the server
    thread's CPU time inside the call, so sleep is excluded), in closed loop,
    open loop only when the run's plan measured the family in open loop alone.

Secondary metrics, shown and never deciding: server CPU per request and
closed-loop wall time per request (1 / throughput) in idle-scaling, with an
account of where the added time goes when epoll's throughput falls.

Growth is fitted by ``bench.analyse.slopes`` (log scale, one block per
repetition) and classified by ``bench.analyse.flatness`` (two-sided:
``RULES["flat"]``); each metric's status follows ``RULES["claim3_metric"]``.
The family's status: SUPPORTED only when every primary metric available to it
supports the claim, NOT SUPPORTED when epoll grows on any primary metric,
INCONCLUSIVE otherwise with a sentence saying which part is shown.
``decided_by`` names the metrics and rules that decided. Judged per family
(``RULES["families"]``): "epoll", "select" and "poll" are the family's backends
of those mechanisms.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bench import metrics
from bench.analyse import idle_steps
from bench.analyse.claim3_explain import throughput_explanation
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
    CLAIM3_CPU_LABEL,
    CLAIM3_MICRO_LABEL,
    CLAIM3_WAIT_LABEL,
    CLAIM3_WALL_LABEL,
    CLAIM_TEXT,
    FALLING,
    FLAT,
    GROWING,
    INCONCLUSIVE,
    NOT_SUPPORTED,
    PRIMARY,
    SECONDARY,
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
from bench.measure.scenarios import idle_scaling
from bench.store.results import RunData
from bench.tables import Mode
from bench.tables.micro import PROCESS
from servers import registry

WALL_PER_REQ = "wall_us_per_req"  # derived: 1e6 / throughput_rps (closed loop)
MICRO_LABEL = CLAIM3_MICRO_LABEL
THROUGHPUT_LABEL = CLAIM3_WALL_LABEL
# (column, label, unit, loop modes in order of preference)
WAIT_METRIC = (
    # Closed loop first: a busy server sleeps less, so each call's CPU time
    # carries less wake-up cost and more of the scan itself.
    metrics.SERVER_WAIT_US_PER_CALL.name, CLAIM3_WAIT_LABEL, metrics.SERVER_WAIT_US_PER_CALL.unit,
    (Mode.CLOSED, Mode.OPEN),
)  # fmt: skip
SECONDARY_METRICS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    # Open loop first: the same request rate for every backend.
    (
        metrics.SERVER_CPU_US_PER_REQ.name,
        CLAIM3_CPU_LABEL,
        metrics.SERVER_CPU_US_PER_REQ.unit,
        (Mode.OPEN, Mode.CLOSED),
    ),
    (WALL_PER_REQ, CLAIM3_WALL_LABEL, metrics.US_PER_REQ, (Mode.CLOSED,)),
)
TRIAL_METRICS = (WAIT_METRIC, *SECONDARY_METRICS)
# How the sentence on which part is shown names each primary metric.
PART_WORDS = {CLAIM3_MICRO_LABEL: "wait call in-process", CLAIM3_WAIT_LABEL: "servers"}


def _idle_plan(trials: pd.DataFrame) -> pd.DataFrame:
    """Every recorded idle-scaling trial, whatever its status (the run's plan)."""
    return trials[trials["scenario"] == idle_scaling.NAME]


def planned_mode(trials: pd.DataFrame, subject: str | None, modes: Sequence[str]) -> str | None:
    """The first of ``modes`` the run's plan measured the subject's idle-scaling in."""
    plan = _idle_plan(trials)
    mine = plan[plan["backend"] == subject]
    return next((m for m in modes if (mine["mode"] == m).any()), None)


def idle_rows(
    trials: pd.DataFrame, metric: str, mode: str, usable: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Usable idle-scaling rows of one loop that measured ``metric`` (``usable``:
    ``usable_trials(trials)`` when the caller has it already)."""
    rows = usable if usable is not None else usable_trials(trials)
    rows = rows[(rows["scenario"] == idle_scaling.NAME) & (rows["mode"] == mode)]
    # A select cell that had to reject descriptors >= 1024 does not measure its N.
    rows = rows[rows[metrics.SERVER_REJECTED_FD_SETSIZE.name].fillna(0) == 0]
    if metric == WALL_PER_REQ:
        rows = rows.assign(**{WALL_PER_REQ: 1e6 / rows[metrics.THROUGHPUT_RPS.name].astype(float)})
    return rows[rows[metric].notna()]


def idle_scaling_fits(rows: pd.DataFrame, metric: str, x: str = "idle_connections") -> dict:
    """One growth fit per backend, repetitions as blocks and position as a term."""
    fits: dict[str, SlopeFit] = {}
    # numpy masks per backend, not a groupby of frames: the false-call tests run this
    # thousands of times.
    backends = rows["backend"].astype(object).to_numpy()
    xs = rows[x].to_numpy(dtype=float, na_value=np.nan)
    ys = rows[metric].to_numpy(dtype=float, na_value=np.nan)
    reps = rows["repetition"].to_numpy()
    positions = (
        rows[POSITION].to_numpy(dtype=float, na_value=np.nan) if POSITION in rows.columns else None
    )
    for backend in sorted(set(backends.tolist())):
        mine = backends == backend
        fits[str(backend)] = growth_fit(
            xs[mine], ys[mine], reps[mine].tolist(), None if positions is None else positions[mine]
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
    if ep_cls == GROWING:
        status, reason = NOT_SUPPORTED, f"{label}: {subject} grows ({ep_reason})"
    elif ep_cls == FALLING:
        status, reason = INCONCLUSIVE, f"{label}: {subject} falls ({ep_reason})"
    elif ep_cls != FLAT:
        status, reason = INCONCLUSIVE, f"{label}: {subject} {ep_cls} ({ep_reason})"
    elif not comps:
        neither = " nor ".join(comparators) or "select nor poll"
        status, reason = INCONCLUSIVE, f"{label}: {subject} flat but neither {neither} measured"
    elif all(c == GROWING for c, _ in comps.values()):
        grow = "; ".join(f"{b} {r}" for b, (_, r) in comps.items())
        status, reason = SUPPORTED, f"{label}: {subject} flat ({ep_reason}); {grow}"
    else:
        weak = "; ".join(f"{b} {c} ({r})" for b, (c, r) in comps.items() if c != GROWING)
        status = INCONCLUSIVE
        reason = f"{label}: {subject} flat but the sweep did not show growth for {weak}"
    return {**evidence, "status": status, "reason": reason}


def _trial_metric(
    trials: pd.DataFrame, spec: tuple[str, str, str, tuple[str, ...]], roles: FamilyRoles,
    role: str, usable: pd.DataFrame | None = None,
) -> dict[str, Any]:  # fmt: skip
    metric, label, unit, modes = spec
    mode = planned_mode(trials, roles.subject, modes) if not trials.empty else None
    rows = idle_rows(trials, metric, mode, usable) if mode is not None else trials.iloc[0:0]
    if rows.empty:
        only = f" in {'/'.join(modes)} loop" if mode is None else f" in {mode} loop"
        reason = f"{label}: no usable idle-scaling trials{only}"
        return {"metric": label, "role": role, "status": INCONCLUSIVE, "reason": reason}
    active = sorted({int(a) for a in rows["active_connections"].dropna()})
    cond = f"idle-scaling, {mode} loop, {'/'.join(map(str, active))} active connections"
    fits = idle_scaling_fits(rows, metric)
    judged = judge_flatness(label, fits, True, unit, cond, roles)
    if metric == WALL_PER_REQ:
        why = throughput_explanation(rows, fits.get(str(roles.subject)), roles.subject)
        if why:
            judged["explanation"] = why
    return {**judged, "role": role}


def _wait_metric(
    trials: pd.DataFrame, roles: FamilyRoles, usable: pd.DataFrame | None = None
) -> dict[str, Any]:
    """The in-server primary metric, or why the family has none."""
    subject = roles.subject
    if subject is not None and not registry.get(subject).wait_instrumented:
        reason = (
            f"{CLAIM3_WAIT_LABEL}: the {roles.label} family's backends do not time their wait "
            "call, so it has no in-server primary metric"
        )
        return {"metric": CLAIM3_WAIT_LABEL, "role": PRIMARY, "status": INCONCLUSIVE,
                "reason": reason}  # fmt: skip
    if subject is not None and subject in idle_steps.planned_backends(trials):
        return _steps_wait_metric(trials, roles, usable)
    return _trial_metric(trials, WAIT_METRIC, roles, PRIMARY, usable)


def _steps_wait_metric(
    trials: pd.DataFrame, roles: FamilyRoles, usable: pd.DataFrame | None = None
) -> dict[str, Any]:
    """The in-server primary metric from idle-steps (the subject) and idle-scaling (the others).

    The plan, not the data, chose idle-steps: the subject was planned there. Its
    select and poll are not (they are not the claim's subject); their idle-scaling
    growth on the same metric, closed loop where planned, shows the metric can grow.
    """
    metric, label, unit, modes = WAIT_METRIC
    subject = str(roles.subject)
    windows = idle_steps.step_windows(trials, usable)
    fits: dict[str, SlopeFit] = {}
    fit = idle_steps.steps_fit(windows, subject, metric)
    if fit is not None:
        fits[subject] = fit
    mode = planned_mode(trials, roles.subject, modes) or modes[0]
    rows = idle_rows(trials, metric, mode, usable)
    for name, other in idle_scaling_fits(rows, metric).items():
        if name in roles.comparators:
            fits[name] = other
    counts = sorted({int(n) for n in windows.loc[windows["backend"] == subject,
                                                 "idle_connections"]})  # fmt: skip
    cond = (
        f"{subject}: idle-steps, one server process per trial at "
        f"{'/'.join(f'{n:,}' for n in counts) or 'no'} idle connections in a random order, "
        "closed loop, the process as the block; "
        f"{'/'.join(roles.comparators) or 'select/poll'}: idle-scaling, {mode} loop"
    )
    judged = judge_flatness(label, fits, True, unit, cond, roles)
    judged["process_ratios"] = idle_steps.process_ratios(windows, subject, metric)
    return {**judged, "role": PRIMARY}


def _micro_metric(micro: pd.DataFrame, roles: FamilyRoles) -> dict[str, Any]:
    if micro.empty:
        reason = f"{MICRO_LABEL}: this run has no micro benchmarks"
        return {"metric": MICRO_LABEL, "role": PRIMARY, "status": INCONCLUSIVE, "reason": reason}
    cond = "one wait call, timeout 0, one descriptor ready, socketpairs, level-triggered"
    names = {m: n for m, n in _mechanism_names(roles).items() if n is not None}
    fits = micro_fits(micro, names)
    return {**judge_flatness(MICRO_LABEL, fits, False, "us per call", cond, roles),
            "role": PRIMARY}  # fmt: skip


def _mechanism_names(roles: FamilyRoles) -> dict[str, str | None]:
    """The family's backend per micro mechanism (the micro table names mechanisms)."""
    out: dict[str, str | None] = {}
    for name in (roles.subject, *roles.comparators, roles.edge):
        if name is not None:
            out[registry.get(name).mechanism] = name
    return out


def _part(m: dict[str, Any], subject: str | None) -> str:
    """'servers (c-epoll unclear)' for the sentence on which part is shown."""
    words = PART_WORDS.get(m["metric"], m["metric"])
    fit = (m.get("backends") or {}).get(str(subject))
    return f"{words} ({subject} {fit['class']})" if fit else f"{words} ({m['reason']})"


def shown_sentence(primaries: Sequence[dict[str, Any]], subject: str | None) -> str:
    """Which part of claim 3 is shown: 'wait call in-process flat; servers not shown (...)'."""
    shown = [PART_WORDS.get(m["metric"], m["metric"]) for m in primaries
             if m["status"] == SUPPORTED]  # fmt: skip
    missing = [_part(m, subject) for m in primaries if m["status"] != SUPPORTED]
    bits = [f"{w} flat" for w in shown]
    if missing:
        bits.append("not shown: " + ", ".join(missing))
    return "; ".join(bits)


def claim3_family(
    trials: pd.DataFrame, roles: FamilyRoles, micro: pd.DataFrame | None = None
) -> dict[str, Any]:
    """Claim 3 for one family (``RULES["claim3"]``); ``micro`` only for the Python family."""
    primaries = [] if micro is None else [_micro_metric(micro, roles)]
    # The usable trials once: the false-call tests run this thousands of times.
    usable = usable_trials(trials)
    primaries.append(_wait_metric(trials, roles, usable))
    secondaries = [
        _trial_metric(trials, spec, roles, SECONDARY, usable) for spec in SECONDARY_METRICS
    ]
    metrics = [*primaries, *secondaries]
    statuses = [m["status"] for m in primaries]
    if NOT_SUPPORTED in statuses:
        status = NOT_SUPPORTED
        deciding = [m for m in primaries if m["status"] == NOT_SUPPORTED]
        head = f"{roles.subject} grows on a primary metric"
    elif all(st == SUPPORTED for st in statuses):
        status, deciding = SUPPORTED, primaries
        head = f"{roles.subject} flat on every primary metric"
    else:
        status, deciding = INCONCLUSIVE, []
        head = shown_sentence(primaries, roles.subject)
    reason = head + " | " + " | ".join(
        f"[{m['status']}] {m['reason']}" + (" (secondary: shown, decides nothing)"
                                           if m["role"] == SECONDARY else "")
        for m in metrics
    )  # fmt: skip
    judged_on = "; ".join(
        f"{m['metric']} ({m['conditions']})" for m in primaries if m.get("conditions")
    )
    conditions = (
        f"{roles.subject} flat means the 95% interval of its growth over the measured "
        f"descriptor range lies inside +-{TOLERANCE_REL_INCREASE:.0%}, growing means its lower "
        "end is above 0 and it is not flat; primary metrics: " + (judged_on or "none measured")
    )
    return {
        "id": "3",
        "claim": CLAIM_TEXT["3"],
        "status": status,
        "conditions": conditions,
        "summary": _claim3_summary(metrics, roles),
        "reason": reason,
        "shown": head if status == INCONCLUSIVE else None,
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
    """'in-server wait call (CPU time): epoll flat; ...' (primary metrics) for the sentence."""
    bits = []
    for m in block["evidence"]["metrics"]:
        if m.get("role") != PRIMARY:
            continue
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
        role = "" if m.get("role") == PRIMARY else " (secondary)"
        parts.append(f"{m['metric']}{role}: " + ", ".join(bits))
    return "; ".join(parts) + (
        f" (growth over each backend's measured range; {subject} with its 95% profile interval "
        "of the log-scale fit, repetitions as blocks, position in the repetition as a term)"
        if parts
        else ""
    )
