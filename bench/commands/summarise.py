"""``bench summarise RUN RUN RUN ...``: the README's short answer from several runs.

One run can be lucky; the short answer rests on three or more. Runs whose
verdicts disagree are not refused: the table says how many runs gave each
status, and every claim-2 comparison cell is pooled over the runs with the run
as a random effect (``bench.analyse.runs.pool_runs``): the pooled ratio, its
interval, the status the claim-2 rule (``RULES["equivalence"]``) gives that
interval, and the between-run spread (tau and the range of the runs' ratios).
It also states the run-to-run spread of the numbers each claim rests on:
claim 1 the connections select served, claim 2 each judged ratio, claim 3
epoll's growth per metric. It prints Markdown to paste under the README's
"The short answer".
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from bench.commands.common import EXIT_OK, EXIT_USAGE, add_results_dir, err, load_run, resolve

HELP = "the README's short answer from 3+ runs, claim 2's cells pooled over the runs"
MIN_RUNS = 3
# All-active cells below this many connections are shown by the verdict, not judged.
MIN_CONNECTIONS_JUDGED = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", help=f"{MIN_RUNS} or more run folders or ids")
    add_results_dir(parser)


def _verdict(run: str, results_dir: str | None) -> dict[str, Any]:
    """The run's verdict.json as written (read through the typed reader, which refuses
    versions it does not know); computed once only for a run that has none."""
    from bench.analyse.verdict import compute_typed_verdict
    from bench.store.verdict_file import read_verdict

    path = resolve(run, results_dir)
    # The folder is checked first: a verdict is only as good as the data it came from.
    data = load_run(path)
    typed = read_verdict(path) if data.verdict is not None else None
    return (typed if typed is not None else compute_typed_verdict(data)).to_dict()


def statuses(verdict: dict[str, Any]) -> dict[str, str]:
    """Claim, claim-2 regime, family and edge-vs-level -> status."""
    out = {}
    for claim in verdict["claims"]:
        out[f"claim {claim['id']}"] = claim["status"]
        for regime in claim.get("evidence", {}).get("regimes", []):
            out[f"claim {claim['id']} {regime['regime']}"] = regime["status"]
        for family, block in (claim.get("families") or {}).items():
            out[f"claim {claim['id']}, {family}"] = block["status"]
    edge = verdict.get("edge_vs_level")
    if edge:
        out["edge vs level"] = edge["status"]
    return out


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


def _claim1(verdicts: Sequence[dict[str, Any]]) -> str:
    per = [
        {k: x for e in _evidence(v, 0) for k, x in e.get("backends", {}).items()} for v in verdicts
    ]
    parts = []
    for backend in sorted({b for p in per for b in p}):
        served = [p.get(backend, {}).get("max_connections_served") for p in per]
        asked = [p.get(backend, {}).get("max_connections_requested") for p in per]
        parts.append(f"{backend} served {_span(served, '.0f')} of {_span(asked, '.0f')}")
    return "; ".join(parts)


def _claim2(verdicts: Sequence[dict[str, Any]]) -> str:
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
        if n >= MIN_CONNECTIONS_JUDGED or regime != "all-active"
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
    from bench.analyse.claim2 import classify_ratio
    from bench.analyse.intervals import RatioEstimate
    from bench.analyse.rules import EQUIVALENCE_CONFIDENCE
    from bench.analyse.runs import pool_runs

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


def _claim3(verdicts: Sequence[dict[str, Any]]) -> str:
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
    from bench.analyse.flatness import classify_interval
    from bench.analyse.rules import CLAIM3_MICRO_LABEL, PRIMARY
    from bench.analyse.runs import pool_growth

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


def _status_words(values: Sequence[str]) -> str:
    """'**SUPPORTED**' when every run agrees, else '**SUPPORTED** in 2 of 3 runs, ...'."""
    counts = Counter(values)
    if len(counts) == 1:
        return f"**{values[0]}**"
    return ", ".join(f"**{s}** in {c} of {len(values)} runs" for s, c in counts.most_common())


def disagreements(verdicts: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """Claim, regime or family -> each run's status, where the runs differ."""
    table = [statuses(v) for v in verdicts]
    keys = list(dict.fromkeys(k for t in table for k in t))
    return {
        key: [t.get(key, "missing") for t in table]
        for key in keys
        if len({t.get(key) for t in table}) > 1
    }


def summary_table(runs: Sequence[str], verdicts: Sequence[dict[str, Any]]) -> str:
    spread = {"1": _claim1(verdicts), "2": _claim2(verdicts), "3": _claim3(verdicts)}
    lines = [
        f"From {len(runs)} runs ({', '.join(v['run_id'] for v in verdicts)}); each number is "
        "the range over the runs (run-to-run spread, not a within-run interval).",
        "",
        "| Claim | Verdict (every run) | Run-to-run spread |",
        "|---|---|---|",
    ]
    for i, claim in enumerate(verdicts[0]["claims"]):
        agreement = claim.get("family_agreement")
        status = _status_words([v["claims"][i]["status"] for v in verdicts])
        status += f" ({agreement})" if agreement else ""
        lines.append(f"| {claim['claim']} | {status} | {spread[str(claim['id'])]} |")
    edge = verdicts[0].get("edge_vs_level")
    if edge:
        words = _status_words(
            [(v.get("edge_vs_level") or {}).get("status", "missing") for v in verdicts]
        )
        lines.append(f"| {edge['question']} | {words} | |")
    differ = disagreements(verdicts)
    if differ:
        lines += [
            "",
            "The runs' verdicts differ: "
            + "; ".join(f"{k}: {', '.join(v)}" for k, v in differ.items())
            + ". The pooled cells below weigh every run.",
        ]
    pooled = pooled_claim2(verdicts)
    if pooled:
        from bench.analyse.rules import EQUIVALENCE_CONFIDENCE
        from bench.analyse.runs import METHOD_RUNS

        lines += [
            "",
            f"Claim 2's cells pooled over the runs ({EQUIVALENCE_CONFIDENCE:.0%} intervals, "
            f"{METHOD_RUNS}; status by RULES['equivalence']; tau is the between-run standard "
            "deviation of the log ratio):",
            "",
            "| Regime | Comparison | Pooled ratio | Status | Between runs |",
            "|---|---|---|---|---|",
            *pooled,
        ]
    growth = pooled_claim3(verdicts)
    if growth:
        from bench.analyse.rules import CONFIDENCE, TOLERANCE_REL_INCREASE
        from bench.analyse.runs import METHOD_RUNS

        lines += [
            "",
            f"Claim 3's in-server growth of each family's epoll pooled over the runs "
            f"({CONFIDENCE:.0%} intervals of 1 + growth, {METHOD_RUNS}; flat inside "
            f"+-{TOLERANCE_REL_INCREASE:.0%} and growing above 0, by RULES['flat']):",
            "",
            "| Metric | Backend | Pooled growth | Class | Between runs |",
            "|---|---|---|---|---|",
            *growth,
        ]
    warnings = sorted({w for v in verdicts for w in v.get("warnings", [])})
    if warnings:
        lines += ["", "Warnings recorded by the runs:", *(f"- {w}" for w in warnings)]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    if len(args.runs) < MIN_RUNS:
        err(f"give at least {MIN_RUNS} runs (got {len(args.runs)}): one run can be lucky")
        return EXIT_USAGE
    verdicts = [_verdict(run, args.results_dir) for run in args.runs]
    ids = [v["run_id"] for v in verdicts]
    if len(set(ids)) < len(ids):
        err(f"the same run was given twice ({', '.join(ids)}): give {MIN_RUNS} different runs")
        return EXIT_USAGE
    print(summary_table(args.runs, verdicts), file=sys.stdout)
    return EXIT_OK
