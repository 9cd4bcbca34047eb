"""A verdict on each of the blog post's three claims, computed from a run folder alone.

The claims (an old, widely copied Python 2 select/epoll blog post):

1. select can watch at most FD_SETSIZE (1024) descriptors per process on Linux.
2. select "polls" while epoll is "triggered", so epoll is more efficient.
3. epoll's efficiency does not drop as the number of descriptors grows.

Each claim gets a status (SUPPORTED, PARTLY SUPPORTED, NOT SUPPORTED,
INCONCLUSIVE), the conditions under which it was judged, the numbers it rests
on and the reason in words. Flagged and failed trials are left out of every fit.

Claim 3, "flat", and why this tolerance
---------------------------------------
For each backend and metric we fit a straight line of the metric against the
number of idle descriptors (least squares; 95% interval by bootstrap over
repetitions, fixed seed). The slope is turned into the *projected relative
increase* over the measured range: slope * (N_max - N_min) / (median value at
N_min). A backend is

- **flat** when the upper end of that interval is below ``TOLERANCE_REL_INCREASE``
  (20%): over the whole sweep it slows down by less than a fifth;
- **growing** when the lower end is above 20%: it slows down by more than a
  fifth, beyond doubt;
- **unclear** otherwise (the interval straddles 20%: too noisy to say).

Relative flatness: on a busy or virtualised machine a per-trial baseline can
be noisy enough that epoll's interval straddles 20% although its slope is
tiny. When select or poll grow beyond doubt on the same metric, epoll is also
called **flat** if the upper end of its slope interval is below
``RELATIVE_SLOPE_FRACTION`` (5%) of the lower end of the smallest of their
slopes: whatever epoll's per-descriptor cost is, it is at least 20 times
smaller than theirs. The reason text says which rule applied.

20% because repeated cells on this 2-core VM agree only to about 10-15%
(MACHINE_FACTS: server-bound cells repeat to ~10%), so a tighter bound would
call noise a slope; and an O(N) mechanism is far outside it: one select call
costs 3 us at 16 fds and 107 us at 1000 (+3,400%), poll 1.9 -> 714 us from 16
to 8000. The same yardstick is used for select and poll, so "epoll flat while
select and poll grow" compares like with like. Claim 3 is SUPPORTED when epoll
is flat on a metric while every measured one of select and poll grows on it;
NOT SUPPORTED when epoll grows on any metric; INCONCLUSIVE otherwise (too few
levels or repetitions, too noisy, or the comparison backends did not grow
either, which means the sweep could not have shown a difference).

Metrics for claim 3: (a) in-server wait-call cost per call in idle-scaling
(the server thread's CPU time inside the call, so sleep is excluded; open loop
preferred: the same request rate for every backend), (b)
server CPU per request in idle-scaling (open loop preferred: the same request
rate for every backend), (c) the micro benchmark's cost of one wait call with
one descriptor ready, against registered descriptors.

Claim 2, "more efficient"
-------------------------
Judged in two regimes, because published work (Gammo et al., OLS 2004) and our
own machine facts show the answer depends on it: idle-heavy (idle-scaling at
the idle count nearest 1,000, K active) and all-active (active-scaling at the
largest connection count all compared backends share). epoll is "more
efficient" than a backend when the 95% interval of the ratio of medians
(epoll/other throughput in closed loop; else other/epoll CPU per request) lies
above ``EFFECT_MARGIN`` (1.10, i.e. at least 10% better); "not more efficient"
when it lies below 1.10, or when it includes 1 (no advantage shown at all)
while the estimate is below 1.10 -- the claim asserts an advantage, so it needs
evidence of one.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bench.store import schema
from bench.analyse.stats import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    CONFIDENCE,
    SlopeFit,
    bootstrap_pooled_ratio,
    bootstrap_slope,
    micro_standard_error_us,
    nearest_level,
    parametric_slope,
    usable_trials,
)
from bench.store.results import RunData, _atomic_write_json, utc_now_iso

TOLERANCE_REL_INCREASE = 0.20
# A noisy epoll fit whose slope is, with 95% confidence, under this fraction of
# the smallest slope select or poll showed is flat *for the claim's purpose*:
# its per-descriptor cost is at least 20 times smaller than the mechanisms the
# claim contrasts it with. See "Relative flatness" in the module docstring.
RELATIVE_SLOPE_FRACTION = 0.05
# Text that marks a reason given by the relative rule (charts word such lines apart).
RELATIVE_RULE_MARK = "but its slope is at most"
MIN_LEVELS = 3
MIN_REPS_PER_LEVEL = 2
EFFECT_MARGIN = 1.10
IDLE_HEAVY_TARGET_N = 1000
NEAR_WALL_FRACTION = 0.90  # select serving >= 90% of FD_SETSIZE counts as "at the wall"
COMPARATORS = ("select", "poll")
SUBJECT = "epoll"

CLAIM_TEXT = {
    "1": "select can watch at most FD_SETSIZE (1024) descriptors per process",
    "2": "epoll is 'triggered' while select 'polls', so epoll is more efficient",
    "3": "epoll does not slow down as the number of descriptors grows",
}

SUPPORTED, PARTLY, NOT_SUPPORTED, INCONCLUSIVE = schema.VERDICT_STATUSES


def _fmt(x: float, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}"


def change_words(rel: float) -> str:
    """A relative change as +8% when small, x48 when large (+4,700% is hard to read)."""
    if rel is None or not math.isfinite(rel):
        return "n/a"
    return f"x{1 + rel:.0f}" if rel >= 1 else f"{rel * 100:+.0f}%"


def _pct(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x * 100:+.0f}%"


# ---------------------------------------------------------------- claim 3


def classify_fit(fit: SlopeFit | None, need_reps: bool) -> tuple[str, str]:
    """'flat' | 'growing' | 'unclear' | 'insufficient', with a reason."""
    if fit is None or fit.n_levels < MIN_LEVELS:
        n = 0 if fit is None else fit.n_levels
        return "insufficient", f"{n} descriptor counts measured, need at least {MIN_LEVELS}"
    if need_reps and fit.min_reps_per_level < MIN_REPS_PER_LEVEL:
        return (
            "insufficient",
            f"only {fit.min_reps_per_level} usable repetition(s) at some descriptor count, "
            f"need {MIN_REPS_PER_LEVEL} for an interval",
        )
    lo, hi = fit.rel_ci
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "insufficient", "no positive value at the smallest descriptor count to scale by"
    span = f"{_pct(lo)}..{_pct(hi)} over {fit.x_min:.0f}-{fit.x_max:.0f}"
    if hi < TOLERANCE_REL_INCREASE:
        return "flat", f"projected increase {span} stays under {_pct(TOLERANCE_REL_INCREASE)}"
    if lo > TOLERANCE_REL_INCREASE:
        return "growing", f"projected increase {span} exceeds {_pct(TOLERANCE_REL_INCREASE)}"
    return "unclear", f"projected increase {span} straddles {_pct(TOLERANCE_REL_INCREASE)} (noisy)"


def classify_fits(fits: dict[str, SlopeFit], need_reps: bool) -> dict[str, tuple[str, str]]:
    """classify_fit for every backend, then the relative-flatness rule for epoll.

    Charts and the verdict both call this, so a chart title never disagrees
    with the verdict about which line is flat.
    """
    classes = {b: classify_fit(fit, need_reps) for b, fit in fits.items()}
    ep = fits.get(SUBJECT)
    if ep is not None and classes[SUBJECT][0] == "unclear":
        growing = {b: fits[b] for b in COMPARATORS if b in classes and classes[b][0] == "growing"}
        relative = _relatively_flat(ep, growing)
        if relative is not None:
            classes[SUBJECT] = ("flat", f"{classes[SUBJECT][1]}, but {relative}")
    return classes


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


def _judge_flatness(
    label: str, fits: dict[str, SlopeFit], need_reps: bool, unit: str, conditions: str
) -> dict[str, Any]:
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


def _relatively_flat(ep: SlopeFit, growing: dict[str, SlopeFit]) -> str | None:
    """Reason text when epoll's slope is surely under 5% of every growing comparator's."""
    if not growing or not math.isfinite(ep.ci_high):
        return None
    floor_backend, floor = min(
        ((b, f.ci_low) for b, f in growing.items()), key=lambda item: item[1]
    )
    if not (math.isfinite(floor) and floor > 0):
        return None
    bound = max(ep.ci_high, 0.0)
    if bound >= RELATIVE_SLOPE_FRACTION * floor:
        return None
    lead = RELATIVE_RULE_MARK.removeprefix("but ")
    return (
        f"{lead} {_fmt(bound * 1000)} per 1000 descriptors, under "
        f"{RELATIVE_SLOPE_FRACTION:.0%} of {floor_backend}'s (at least {_fmt(floor * 1000)})"
    )


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
        metrics.append(_judge_flatness(label, _trial_fits(rows, metric), True, unit, cond))
    if run.micro.empty:
        metrics.append(
            {"metric": "micro wait call", "status": INCONCLUSIVE, "reason": "no micro benchmarks"}
        )
    else:
        cond = "one wait call, timeout 0, one descriptor ready, socketpairs, level-triggered"
        metrics.append(
            _judge_flatness(
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
        f"epoll flat means a projected increase below {_pct(TOLERANCE_REL_INCREASE)} over the "
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


# ---------------------------------------------------------------- claim 1


def _served(row: pd.Series) -> float:
    for col in ("connections_served", "server_current_connections"):
        v = row.get(col)
        if v is not None and pd.notna(v):
            return float(v)
    return float("nan")


def _requested(row: pd.Series) -> float:
    v = row.get("connections_requested")
    if v is not None and pd.notna(v):
        return float(v)
    parts = [row.get("idle_connections"), row.get("active_connections")]
    return float(sum(int(p) for p in parts if p is not None and pd.notna(p)))


def claim1(run: RunData) -> dict[str, Any]:
    trials = run.trials
    rows = (
        trials[(trials["scenario"] == "fd-limit") & (trials["status"] == "ok")]
        if not trials.empty
        else trials
    )
    evidence: dict[str, Any] = {"fd_setsize": schema.FD_SETSIZE}
    if not run.micro.empty:
        sel_micro = run.micro[run.micro["mechanism"] == "select"]["n_registered"].dropna()
        if not sel_micro.empty:
            evidence["micro_select_max_n_registered"] = int(sel_micro.max())
    per_backend: dict[str, Any] = {}
    for backend, grp in rows.groupby("backend") if not rows.empty else []:
        served = grp.apply(_served, axis=1)
        requested = grp.apply(_requested, axis=1)
        rejected = grp[["server_rejected_fd_setsize", "connections_rejected"]].fillna(0).max(axis=1)
        obs = sorted({str(o) for o in grp["client_observation"].dropna() if str(o)})
        per_backend[str(backend)] = {
            "max_connections_requested": float(requested.max()),
            "max_connections_served": float(served.max()),
            "median_connections_served": float(served.median()),
            "max_rejected": float(rejected.max()),
            "trials": len(grp),
            "client_observations": obs[:3],
        }
    evidence["backends"] = per_backend
    conditions = (
        "Linux, CPython select.select with int descriptors: it refuses any descriptor number "
        f">= {schema.FD_SETSIZE}, so the wall is on descriptor numbers, and the server's own "
        "descriptors (listening socket, stdio, control channel) use some of the 1024; poll and "
        "epoll are bounded only by RLIMIT_NOFILE"
    )
    base = {"id": "1", "claim": CLAIM_TEXT["1"], "conditions": conditions, "evidence": evidence}
    sel = per_backend.get("select")
    if sel is None:
        return {
            **base,
            "status": INCONCLUSIVE,
            "summary": "no fd-limit trial of select",
            "reason": "no usable fd-limit trial of the select backend",
        }
    served, requested, rejected = (
        sel["max_connections_served"],
        sel["max_connections_requested"],
        sel["max_rejected"],
    )
    others = ", ".join(
        f"{b} served {v['max_connections_served']:.0f}/{v['max_connections_requested']:.0f}"
        for b, v in per_backend.items()
        if b != "select"
    )
    summary = (
        f"select served at most {served:.0f} of {requested:.0f} connections, "
        f"rejected {rejected:.0f}"
        + (f"; {others}" if others else "")
        + (f"; client saw: {sel['client_observations'][0]}" if sel["client_observations"] else "")
    )
    if not math.isfinite(served):
        status, reason = (
            INCONCLUSIVE,
            "the fd-limit trials of select recorded no served-connection count",
        )
    elif served > schema.FD_SETSIZE:
        status, reason = (
            NOT_SUPPORTED,
            f"select served {served:.0f} > {schema.FD_SETSIZE} connections at once",
        )
    elif requested <= schema.FD_SETSIZE:
        status, reason = (
            INCONCLUSIVE,
            f"only {requested:.0f} connections requested: "
            f"the sweep never passed {schema.FD_SETSIZE}",
        )
    elif rejected <= 0 and served >= requested:
        status, reason = (
            NOT_SUPPORTED,
            "select served every requested connection past 1024 without rejecting any",
        )
    elif served < NEAR_WALL_FRACTION * schema.FD_SETSIZE:
        status = INCONCLUSIVE
        reason = (
            f"select served only {served:.0f}, well below {schema.FD_SETSIZE}: something other "
            "than FD_SETSIZE stopped it"
        )
    else:
        status = SUPPORTED
        reason = (
            f"select served {served:.0f} (<= {schema.FD_SETSIZE}) of {requested:.0f} requested and "
            f"rejected {rejected:.0f}"
        )
    return {**base, "status": status, "summary": summary, "reason": reason}


# ---------------------------------------------------------------- claim 2


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


# ---------------------------------------------------------------- the whole verdict


def compute_verdict(run: RunData) -> dict[str, Any]:
    """The verdict on all three claims as a JSON-serialisable dict."""
    trials = run.trials
    excluded = 0
    if not trials.empty:
        excluded = int(len(trials) - len(usable_trials(trials)))
    return {
        "schema_version": schema.SCHEMA_VERSION,
        "run_id": run.run_id,
        "generated_utc": utc_now_iso(),
        "method": {
            "confidence": CONFIDENCE,
            "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
            "bootstrap_seed": BOOTSTRAP_SEED,
            "flat_tolerance_rel_increase": TOLERANCE_REL_INCREASE,
            "relative_slope_fraction": RELATIVE_SLOPE_FRACTION,
            "min_levels": MIN_LEVELS,
            "min_reps_per_level": MIN_REPS_PER_LEVEL,
            "effect_margin": EFFECT_MARGIN,
            "trials_total": len(trials),
            "trials_excluded_flagged_or_failed": excluded,
        },
        "claims": [claim1(run), claim2(run), claim3(run)],
    }


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item"):  # numpy scalars
        return _json_safe(obj.item())
    return obj


def write_verdict(run: RunData, verdict: dict[str, Any]) -> Path:
    """Write verdict.json into the run folder (NaN becomes null)."""
    path = run.path / schema.VERDICT_JSON
    _atomic_write_json(path, _json_safe(verdict))
    return path


def format_verdict_table(verdict: dict[str, Any], width: int = 110) -> str:
    """The verdict as a plain-text table (rich, no colour), one row per claim and regime."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Verdict for run {verdict.get('run_id', '?')}", show_lines=True)
    table.add_column("Claim", ratio=3)
    table.add_column("Status", ratio=1)
    table.add_column("Evidence and conditions", ratio=5)
    for c in verdict.get("claims", []):
        table.add_row(
            f"{c['id']}. {c['claim']}",
            c["status"],
            f"{c.get('summary', '')}\nConditions: {c['conditions']}",
        )
        for r in c.get("regimes", []):
            table.add_row(f"   {c['id']} when {r['regime']}", r["status"], r["where"])
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None, force_terminal=False).print(table)
    return buf.getvalue()


def verdict_summary(verdict: dict[str, Any] | None) -> str:
    """One line for `bench list`: '1 SUPPORTED; 2 PARTLY SUPPORTED; 3 SUPPORTED'."""
    if not verdict:
        return ""
    return "; ".join(f"{c['id']} {c['status']}" for c in verdict.get("claims", []))


def load_verdict(path: Path) -> dict[str, Any] | None:
    p = path / schema.VERDICT_JSON
    return json.loads(p.read_text()) if p.is_file() else None
