"""A verdict on each of the blog post's three claims, computed from a run folder alone.

The claims (an old, widely copied Python 2 select/epoll blog post):

1. select can watch at most FD_SETSIZE (1024) descriptors per process on Linux.
2. select "polls" while epoll is "triggered", so epoll is more efficient.
3. epoll's efficiency does not drop as the number of descriptors grows.

Each claim gets a status (SUPPORTED, PARTLY SUPPORTED, NOT SUPPORTED,
INCONCLUSIVE), the conditions under which it was judged, the numbers it rests
on and the reason in words. Trials are left out for faults only (failed,
flagged, steal: ``RULES["faults"]``); the client-bound rule is a sensitivity
analysis: the whole verdict computed again with client-bound trials left out,
every status side by side in ``sensitivity`` (``RULES["sensitivity"]``).

Each claim is judged per family of backends (Python event loop, C twins,
external servers: ``bench.analyse.families``), with one overall status and one
sentence on where the families agree and differ; the Python family is the
headline. Beside the claims, ``edge_vs_level`` compares edge- with
level-triggered epoll in every family that has both (``bench.analyse.edge_level``).

This module assembles the three claims (``bench.analyse.claim1``, ``claim2``,
``claim3``), the edge-vs-level entry, the run's warnings, what the trial table could tell about
client-bound and send-lagged trials (``bench.analyse.flags``) and every rule in
words (``bench.analyse.rules.RULES``, quoted verbatim by the report), writes
``verdict.json`` and formats it. Intervals: ``bench.analyse.intervals`` (a cell,
a ratio) and ``bench.analyse.slopes`` (growth against descriptors), each with a
coverage test in ``tests/test_analyse_coverage.py``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from bench.analyse.churn import churn
from bench.analyse.claim1 import claim1
from bench.analyse.claim2 import claim2
from bench.analyse.claim3 import claim3
from bench.analyse.crossover import crossover
from bench.analyse.edge_level import edge_vs_level
from bench.analyse.flags import (
    client_bound,
    data_quality,
    leave_out_client_bound,
    send_lag_material,
    steal_fault,
)
from bench.analyse.flatness import change_words, classify_fit, classify_fits
from bench.analyse.rules import (
    CLAIM_TEXT,
    CLIENT_BOUND_ANALYSIS,
    CLIENT_BOUND_BUSY_FRACTION,
    CONFIDENCE,
    EFFECT_MARGIN,
    EQUIVALENCE_BOUNDS,
    EQUIVALENCE_CONFIDENCE,
    MIN_CONNECTIONS_FOR_MECHANISM,
    MIN_LEVELS,
    MIN_PAIRS,
    MIN_REPS_PER_LEVEL,
    PRIMARY_ANALYSIS,
    RULES,
    RULES_CHANGED,
    SEND_LAG_P99_FRACTION,
    STEAL_FRACTION_MAX,
    TOLERANCE_REL_INCREASE,
)
from bench.analyse.stats import usable_trials
from bench.analyse.uring_question import uring_question
from bench.store import schema
from bench.store.results import RunData, atomic_write_json
from bench.store.verdict_file import VERDICT_SCHEMA_VERSION, Verdict, read_verdict
from bench.tables import TrialStatus, utc_now_iso

# Names charts, listing, report and tests import from here.
__all__ = [
    "CLAIM_TEXT",
    "TOLERANCE_REL_INCREASE",
    "change_words",
    "claim1",
    "claim2",
    "claim3",
    "classify_fit",
    "classify_fits",
    "compute_typed_verdict",
    "compute_verdict",
    "edge_vs_level",
    "read_verdict",
    "sensitivity",
    "statuses",
    "write_verdict",
]


def _method(trials: pd.DataFrame) -> dict[str, Any]:
    excluded = int(len(trials) - len(usable_trials(trials))) if not trials.empty else 0
    ok = trials["status"].fillna(TrialStatus.FAILED) == TrialStatus.OK if not trials.empty else None
    n_client_bound = int((client_bound(trials) & ok).sum()) if ok is not None else 0
    n_send_lag = int((send_lag_material(trials) & ok).sum()) if ok is not None else 0
    n_steal = int((steal_fault(trials) & ok).sum()) if ok is not None else 0
    return {
        "confidence": CONFIDENCE,
        "equivalence_confidence": EQUIVALENCE_CONFIDENCE,
        "equivalence_bounds": list(EQUIVALENCE_BOUNDS),
        "effect_margin": EFFECT_MARGIN,
        "flat_tolerance_rel_increase": TOLERANCE_REL_INCREASE,
        "min_levels": MIN_LEVELS,
        "min_reps_per_level": MIN_REPS_PER_LEVEL,
        "min_pairs": MIN_PAIRS,
        "min_connections_all_active": MIN_CONNECTIONS_FOR_MECHANISM,
        "client_bound_busy_fraction": CLIENT_BOUND_BUSY_FRACTION,
        "steal_fraction_max": STEAL_FRACTION_MAX,
        "rules_changed": RULES_CHANGED,
        "send_lag_p99_fraction": SEND_LAG_P99_FRACTION,
        "trials_total": len(trials),
        "trials_excluded": excluded,
        "trials_client_bound": n_client_bound,
        "trials_send_lag": n_send_lag,
        "trials_steal": n_steal,
        "rules": dict(RULES),
    }


def _judge(run: RunData) -> dict[str, Any]:
    """Every status-bearing part of the verdict for one set of trials."""
    claims = [claim1(run), claim2(run), claim3(run)]
    return {
        "claims": claims,
        "edge_vs_level": edge_vs_level(run, claims[2]),
        "uring": uring_question(run),
        "churn": churn(run),
    }


def statuses(parts: dict[str, Any]) -> dict[str, str]:
    """Every status of a verdict, keyed by where it is: claim, family, regime, metric."""
    out: dict[str, str] = {}
    for c in parts.get("claims", []):
        name = f"claim {c['id']}"
        out[name] = c["status"]
        for f in (c.get("families") or {}).values():
            where = f"{name}, {f['label']} family"
            out[where] = f["status"]
            for r in f.get("regimes") or []:
                out[f"{where}, {r['regime']}"] = r["status"]
            for m in (f.get("evidence") or {}).get("metrics", []):
                out[f"{where}, {m['metric']}"] = m["status"]
    edge = parts.get("edge_vs_level") or {}
    if edge:
        out["edge vs level"] = edge["status"]
        for f in (edge.get("families") or {}).values():
            out[f"edge vs level, {f['label']} family"] = f["status"]
            for r in f.get("regimes") or []:
                out[f"edge vs level, {f['label']} family, {r['regime']}"] = r["status"]
    uring = parts.get("uring") or {}
    if uring.get("answers"):
        out["io_uring"] = uring["status"]
        for b in uring["answers"]:
            where = f"io_uring, {b['label']} family, {b['backend']} vs {b['baseline']}"
            out[where] = b["status"]
            for r in b.get("regimes") or []:
                if r.get("judged"):
                    out[f"{where}, {r['regime']}"] = r["status"]
    ch = parts.get("churn") or {}
    if ch:
        out["churn"] = ch["answer"]
        for f in ch.get("families") or []:
            out[f"churn, {f['label']} family"] = f["answer"]
    return out


def sensitivity(primary: dict[str, Any], excluded: dict[str, Any], n_client_bound: int) -> dict:
    """Every status with and without the client-bound exclusion, and what differs."""
    a, b = statuses(primary), statuses(excluded)
    rows = [
        {"where": k, PRIMARY_ANALYSIS: a.get(k), CLIENT_BOUND_ANALYSIS: b.get(k),
         "differs": a.get(k) != b.get(k)}
        for k in [*a, *(k for k in b if k not in a)]
    ]  # fmt: skip
    differ = [r["where"] for r in rows if r["differs"]]
    if n_client_bound == 0:
        sentence = "No trial was client-bound, so leaving them out changes nothing."
    elif differ:
        sentence = (
            f"Leaving out the {n_client_bound} client-bound trial(s) changes "
            f"{len(differ)} status(es): "
            + "; ".join(
                f"{r['where']} {r[PRIMARY_ANALYSIS]} -> {r[CLIENT_BOUND_ANALYSIS]}"
                for r in rows
                if r["differs"]
            )
            + "."
        )
    else:
        sentence = f"Leaving out the {n_client_bound} client-bound trial(s) changes no status."
    return {
        "rule": "sensitivity",
        "analyses": [PRIMARY_ANALYSIS, CLIENT_BOUND_ANALYSIS],
        "trials_client_bound": n_client_bound,
        "statuses": rows,
        "differ": differ,
        "sentence": sentence,
    }


def compute_verdict(run: RunData) -> dict[str, Any]:
    """The verdict on all three claims, per family, and edge vs level, as a dict.

    The analysis' own form (NaN where an estimate is undefined); ``compute_typed_verdict``
    is the same as the typed tree verdict.json is written from and read back as.
    """
    trials = run.trials
    primary = _judge(run)
    left_out = leave_out_client_bound(trials) if not trials.empty else trials
    excluded = primary if left_out is trials else _judge(replace(run, trials=left_out))
    ok = trials["status"].fillna(TrialStatus.FAILED) == TrialStatus.OK if not trials.empty else None
    n_client_bound = int((client_bound(trials) & ok).sum()) if ok is not None else 0
    return {
        "schema_version": VERDICT_SCHEMA_VERSION,
        "run_id": run.run_id,
        "generated_utc": utc_now_iso(),
        "warnings": [str(w) for w in (run.meta.get("warnings") or [])],
        "method": _method(trials),
        "data_quality": data_quality(trials),
        "claims": primary["claims"],
        "edge_vs_level": primary["edge_vs_level"],
        "uring": primary["uring"],
        "crossover": crossover(run),
        "churn": primary["churn"],
        "sensitivity": sensitivity(primary, excluded, n_client_bound),
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


def compute_typed_verdict(run: RunData) -> Verdict:
    """The verdict as the typed tree (NaN becomes None), computed once per run."""
    return as_typed(compute_verdict(run))


def as_typed(verdict: dict[str, Any] | Verdict) -> Verdict:
    """A verdict dict (``compute_verdict``) as the typed tree; a typed one as it is."""
    if isinstance(verdict, Verdict):
        return verdict
    return Verdict.from_dict(_json_safe(verdict))


def write_verdict(run: RunData, verdict: dict[str, Any] | Verdict) -> Path:
    """Write verdict.json into the run folder, always through ``Verdict.to_dict``."""
    path = run.path / schema.VERDICT_JSON
    atomic_write_json(path, as_typed(verdict).to_dict())
    return path
