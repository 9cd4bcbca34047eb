"""Several runs' verdicts side by side: the statuses they agree and differ on, the run-to-run
spread of the numbers each claim rests on, and claim 2's cells and claim 3's growth pooled
over the runs with the run as a random effect (``bench.analyse.runs``).

``bench summarise`` prints it (``bench.present.summary_md``); everything here reads
verdict.json documents (dicts as written), never the trials.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from bench.analyse.claim2 import classify_ratio
from bench.analyse.flatness import classify_interval
from bench.analyse.intervals import RatioEstimate
from bench.analyse.rules import (
    CLAIM3_MICRO_LABEL,
    EQUIVALENCE_CONFIDENCE,
    MIN_CONNECTIONS_FOR_MECHANISM,
    PRIMARY,
)
from bench.analyse.runs import pool_growth, pool_runs
from bench.analyse.verdict import statuses


def _span(values: Iterable[float | None], fmt: str) -> str:
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return "n/a"
    lo, hi = vals[0], vals[-1]
    return format(lo, fmt) if lo == hi else f"{lo:{fmt}} to {hi:{fmt}}"


def _evidence(verdict: dict[str, Any], index: int) -> list[dict[str, Any]]:
    """A claim's evidence blocks: every family's when judged per family, else the claim's."""
    claim = verdict["claims"][index]
    families = claim.get("families") or {}
    return [b["evidence"] for b in families.values()] or [claim["evidence"]]


def _regimes(verdict: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Claim 2's regimes with the epoll backend of their family (its roles' subject)."""
    claim = verdict["claims"][1]
    blocks = list((claim.get("families") or {}).values()) or [claim]
    return [
        (str((b.get("roles") or {}).get("subject") or "epoll"), r)
        for b in blocks
        for r in b["evidence"].get("regimes", [])
    ]


def claim1_spread(verdicts: Sequence[dict[str, Any]]) -> str:
    per = [
        {k: x for e in _evidence(v, 0) for k, x in e.get("backends", {}).items()} for v in verdicts
    ]
    parts = []
    for backend in sorted({b for p in per for b in p}):
        served = [p.get(backend, {}).get("max_connections_served") for p in per]
        asked = [p.get(backend, {}).get("max_connections_requested") for p in per]
        parts.append(f"{backend} served {_span(served, '.0f')} of {_span(asked, '.0f')}")
    return "; ".join(parts)


def claim2_spread(verdicts: Sequence[dict[str, Any]]) -> str:
    # Keyed by the metric too: a ratio of throughputs (closed loop) and one of CPU per
    # request (open loop) are different quantities, never one range.
    cells: dict[tuple[str, str, int, str], list[float | None]] = {}
    for v in verdicts:
        for subject, regime in _regimes(v):
            for comp in regime.get("comparisons", []):
                metric = f"{comp.get('loop', '?')} loop, {comp.get('metric', '?')}"
                pair = f"{subject} vs {comp['backend']}"
                key = (regime["regime"], pair, int(comp.get("connections") or 0), metric)
                cells.setdefault(key, []).append((comp.get("decision") or {}).get("ratio"))
    n_runs = len(verdicts)
    return "; ".join(
        f"{regime}, {pair} at {n} connections ({metric}"
        f"{'' if len(ratios) == n_runs else f', {len(ratios)} of {n_runs} runs'}): "
        f"{_span(ratios, '.2f')}x"
        for (regime, pair, n, metric), ratios in sorted(cells.items())
        if n >= MIN_CONNECTIONS_FOR_MECHANISM or regime != "all-active"
    )


def _claim2_cells(
    verdicts: Sequence[dict[str, Any]],
) -> dict[tuple[str, str, int, str], list[dict[str, Any]]]:
    """Each judged claim-2 comparison's decision per run, by regime, backend, size and metric."""
    cells: dict[tuple[str, str, int, str], list[dict[str, Any]]] = {}
    for v in verdicts:
        for subject, regime in _regimes(v):
            for comp in regime.get("comparisons", []):
                if not comp.get("judged", True):
                    continue
                metric = f"{comp.get('loop', '?')} loop, {comp.get('metric', '?')}"
                pair = f"{subject} vs {comp['backend']}"
                key = (regime["regime"], pair, int(comp.get("connections") or 0), metric)
                cells.setdefault(key, []).append(comp.get("decision") or {})
    return cells


def pooled_claim2(verdicts: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown rows: each claim-2 cell pooled over the runs, its status and the spread."""
    rows = []
    for (regime, pair, n, metric), decisions in sorted(_claim2_cells(verdicts).items()):
        logs = [math.log(d["ratio"]) if _finite(d.get("ratio")) else math.nan for d in decisions]
        ses = [d.get("log_se") if _finite(d.get("log_se")) else math.nan for d in decisions]
        pooled = pool_runs(logs, ses, EQUIVALENCE_CONFIDENCE)
        status = classify_ratio(
            RatioEstimate(pooled.ratio, pooled.ci_low, pooled.ci_high, pooled.n_runs, pooled.n_runs)
        )
        tau = f"{pooled.tau:.2f}" if _finite(pooled.tau) else "n/a"
        rows.append(
            f"| {regime} | {pair} at {n} connections ({metric}) | "
            f"{pooled.ratio:.2f}x [{pooled.ci_low:.2f}, {pooled.ci_high:.2f}] | {status} | "
            f"tau {tau}; runs {pooled.run_min:.2f}-{pooled.run_max:.2f}x "
            f"({pooled.n_runs} of {len(verdicts)} runs) |"
        )
    return rows


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def claim3_spread(verdicts: Sequence[dict[str, Any]]) -> str:
    growth: dict[tuple[str, str], list[float | None]] = {}
    for v in verdicts:
        for evidence in _evidence(v, 2):
            for metric in evidence.get("metrics", []):
                # The family's epoll is the backend its evidence names first.
                for backend, fit in metric.get("backends", {}).items():
                    if backend.endswith("epoll"):
                        key = (metric["metric"], backend)
                        growth.setdefault(key, []).append(fit.get("projected_rel_increase"))
    return "; ".join(
        f"{metric}: {backend} {_span([g * 100 if g is not None else None for g in gs], '+.0f')}%"
        for (metric, backend), gs in growth.items()
    )


def pooled_claim3(verdicts: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown rows: each family's epoll's growth per primary trial metric, pooled over runs."""
    fits: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for v in verdicts:
        claim = v["claims"][2]
        for block in (claim.get("families") or {}).values() or [claim]:
            subject = str((block.get("roles") or {}).get("subject") or "epoll")
            for m in block["evidence"].get("metrics", []):
                fit = (m.get("backends") or {}).get(subject)
                if m.get("role") == PRIMARY and m["metric"] != CLAIM3_MICRO_LABEL and fit:
                    fits.setdefault((m["metric"], subject), []).append(fit)
    rows = []
    for (metric, backend), per_run in sorted(fits.items()):
        pooled = pool_growth(per_run)
        if pooled.n_runs < 2:
            continue
        lo, hi = pooled.ci_low - 1, pooled.ci_high - 1
        rows.append(
            f"| {metric} | {backend} | {pooled.ratio - 1:+.0%} [{lo:+.0%}, {hi:+.0%}] | "
            f"{classify_interval(lo, hi)} | tau {pooled.tau:.2f}; runs "
            f"{pooled.run_min - 1:+.0%} to {pooled.run_max - 1:+.0%} "
            f"({pooled.n_runs} of {len(verdicts)} runs) |"
        )
    return rows


def disagreements(verdicts: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """Claim, regime or family -> each run's status, where the runs differ."""
    table = [statuses(v) for v in verdicts]
    keys = list(dict.fromkeys(k for t in table for k in t))
    return {
        key: [t.get(key, "missing") for t in table]
        for key in keys
        if len({t.get(key) for t in table}) > 1
    }
