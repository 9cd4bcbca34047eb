"""The verdict as text: the console's table (``format_verdict_table``) and `bench list`'s line."""

from __future__ import annotations

import io
from typing import Any


def format_verdict_table(verdict: dict[str, Any], width: int = 110) -> str:
    """The verdict as a plain-text table (rich, no colour), one row per claim and regime."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Verdict for run {verdict.get('run_id', '?')}", show_lines=True)
    table.add_column("Claim", ratio=3)
    table.add_column("Status", ratio=1)
    table.add_column("Evidence and conditions", ratio=5)
    for c in verdict.get("claims", []):
        families = list((c.get("families") or {}).values())
        if len(families) < 2:
            table.add_row(
                f"{c['id']}. {c['claim']}",
                c["status"],
                f"{c.get('summary', '')}\nConditions: {c['conditions']}",
            )
            for r in c.get("regimes", []):
                table.add_row(f"   {c['id']} when {r['regime']}", r["status"], r["where"])
            continue
        # Several families: the overall status and the sentence, then each family's block.
        table.add_row(f"{c['id']}. {c['claim']}", c["status"], c.get("family_agreement", ""))
        for f in families:
            table.add_row(
                f"   {c['id']}, {f['label']} family",
                f["status"],
                f"{f.get('summary', '')}\nConditions: {f['conditions']}",
            )
            for r in f.get("regimes", []):
                table.add_row(f"   {c['id']}, {f['label']}, {r['regime']}", r["status"], r["where"])
    edge = verdict.get("edge_vs_level")
    if edge:
        table.add_row(edge["question"], edge["status"], edge.get("family_agreement", ""))
    uring = verdict.get("uring")
    if uring and uring.get("answers"):
        table.add_row(uring["question"], uring["status"], uring.get("sentence", ""))
    lines = [f"Run warning: {w}" for w in verdict.get("warnings") or []]
    sens = verdict.get("sensitivity")
    if sens:
        lines.append(f"Sensitivity (client-bound rule): {sens['sentence']}")
    if lines:
        table.caption = "\n".join(lines)
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None, force_terminal=False).print(table)
    return buf.getvalue()


def verdict_summary(verdict: dict[str, Any] | None) -> str:
    """One line for `bench list`: '1 SUPPORTED; 2 PARTLY SUPPORTED; 3 SUPPORTED'."""
    if not verdict:
        return ""
    return "; ".join(f"{c['id']} {c['status']}" for c in verdict.get("claims", []))
