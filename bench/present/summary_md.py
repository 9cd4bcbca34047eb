"""``bench summarise``'s Markdown: the README's short answer from several runs' verdicts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from bench.analyse.rules import CONFIDENCE, EQUIVALENCE_CONFIDENCE, TOLERANCE_REL_INCREASE
from bench.analyse.runs import METHOD_RUNS
from bench.analyse.summary import (
    claim1_spread,
    claim2_spread,
    claim3_spread,
    disagreements,
    pooled_claim2,
    pooled_claim3,
)


def _status_words(values: Sequence[str]) -> str:
    """'**SUPPORTED**' when every run agrees, else '**SUPPORTED** in 2 of 3 runs, ...'."""
    counts = Counter(values)
    if len(counts) == 1:
        return f"**{values[0]}**"
    return ", ".join(f"**{s}** in {c} of {len(values)} runs" for s, c in counts.most_common())


def summary_table(runs: Sequence[str], verdicts: Sequence[dict[str, Any]]) -> str:
    spread = {
        "1": claim1_spread(verdicts),
        "2": claim2_spread(verdicts),
        "3": claim3_spread(verdicts),
    }
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
    if any((v.get("uring") or {}).get("answers") for v in verdicts):
        words = _status_words([(v.get("uring") or {}).get("status", "missing") for v in verdicts])
        lines.append(f"| does io_uring beat epoll? | {words} | |")
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
