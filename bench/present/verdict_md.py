"""The verdict in report.md: statuses, what decided each claim, every interval with its method,
and the rules quoted verbatim from verdict.json (which took them from bench.analyse.rules).

Reads only the verdict document, so a report can be rewritten from verdict.json alone.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd


def md_escape(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_none_"
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = ["" if pd.isna(v) else md_escape(v) for v in row.tolist()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}g}"


def _pct(x: Any) -> str:
    """A relative change as +8% when small, x48 when large (+4,700% is hard to read)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "+inf" if x > 0 else "-inf"
    return f"x{1 + x:.0f}" if x >= 1 else f"{x * 100:+.0f}%"


def _interval(d: dict[str, Any], lo: str = "ci_low", hi: str = "ci_high") -> str:
    return f"[{_num(d.get(lo))}, {_num(d.get(hi))}]"


def _claim2_table(claim: dict[str, Any]) -> list[str]:
    rows = []
    for regime in claim.get("evidence", {}).get("regimes", []):
        for c in regime.get("comparisons", []):
            if "decision" not in c:
                continue  # a verdict.json written before the equivalence rule
            d, w = c["decision"], c["interval_95"]
            level = c.get("idle_connections", c.get("active_connections"))
            rows.append(
                {
                    "regime": regime["regime"], "epoll vs": c["backend"],
                    "cell": f"{int(level)} {'idle' if 'idle_connections' in c else 'active'}, "
                    f"{c['loop']} loop",
                    "ratio": f"{_num(d['ratio'])} ({c['ratio_definition']})",
                    f"{d['confidence']:.0%} interval (decides)": _interval(d),
                    f"{w['confidence']:.0%} interval": _interval(w),
                    "class": c["class"] if c["judged"] else f"{c['class']} (not judged)",
                    "method": d["method"],
                }
            )  # fmt: skip
    out = ["", md_table(pd.DataFrame(rows)), ""] if rows else []
    for regime in claim.get("evidence", {}).get("regimes", []):
        for other, p in (regime.get("pooled_summary") or {}).items():
            cells = "/".join(str(int(v)) for v in p.get("cells", []))
            out.append(
                f"- {regime['regime']} summary, epoll vs {other} over {cells} connections: "
                f"{_num(p['ratio'])}x {_interval(p)} ({p['confidence']:.0%}, {p['method']}); "
                "decides nothing."
            )
    return [*out, ""] if out else []


def _claim3_tables(claim: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for m in claim.get("evidence", {}).get("metrics", []):
        where = f" ({m['conditions']})" if m.get("conditions") else ""
        out += [f"**{m['metric']}** — {m['status']}{where}", ""]
        backends = m.get("backends") or {}
        if backends and not all("slope_per_1000" in v for v in backends.values()):
            out += [f"_{m.get('reason', '')}_", ""]  # written before slopes per 1,000
            continue
        if not backends:
            out += [f"_{m['reason']}_", ""]
            continue
        rows = []
        for b, v in backends.items():
            rows.append(
                {
                    "backend": b,
                    f"slope per 1,000 descriptors ({m.get('unit', '')})": (
                        f"{_num(v['slope_per_1000'])} "
                        f"{_interval(v, 'slope_per_1000_ci_low', 'slope_per_1000_ci_high')}"
                    ),
                    "growth over the range [95%]": (
                        f"{_pct(v['projected_rel_increase'])} "
                        f"[{_pct(v['projected_rel_increase_ci_low'])}, "
                        f"{_pct(v['projected_rel_increase_ci_high'])}] over "
                        f"{v['x_min']:.0f}-{v['x_max']:.0f}"
                    ),
                    "class": v["class"],
                }
            )
        methods = sorted({v["method"] for v in backends.values()})
        out += [md_table(pd.DataFrame(rows)), "", f"Method: {'; '.join(methods)}.", ""]
        for text in (m.get("slope_comparison") or {}).values():
            out.append(f"- {text} (reported; decides nothing)")
        if m.get("explanation"):
            out.append(f"- Where the time goes: {m['explanation']}.")
        out.append("")
    return out


def verdict_section(verdict: dict[str, Any] | None) -> list[str]:
    """The '## Verdict' section of report.md."""
    if not verdict:
        return ["## Verdict", "", "_No verdict computed: run `python -m bench report RUN`._", ""]
    rows = []
    for c in verdict.get("claims", []):
        rows.append({"claim": f"{c['id']}. {c['claim']}", "status": f"**{c['status']}**",
                     "evidence": c.get("summary", "")})  # fmt: skip
        for r in c.get("regimes", []):
            rows.append(
                {"claim": f"{c['id']} when {r['regime']}", "status": r["status"],
                 "evidence": r["where"]}
            )  # fmt: skip
    out = ["## Verdict", ""]
    warnings = verdict.get("warnings") or []
    if warnings:
        out += ["**This run recorded warnings; read the verdict with them in mind:**", ""]
        out += [f"- {md_escape(w)}" for w in warnings] + [""]
    out += [md_table(pd.DataFrame(rows)), ""]
    for c in verdict.get("claims", []):
        out += [
            f"### Claim {c['id']}: {c['claim']} — {c['status']}",
            "",
            f"- **Conditions:** {c['conditions']}",
            f"- **Reason:** {c['reason']}",
        ]
        decided = c.get("decided_by")
        if decided:
            for d in decided:
                what = d.get("metric") or f"{d.get('regime')}: {d.get('comparison')}"
                rules = ", ".join(f"`{r}`" for r in d.get("rules", []))
                out.append(f"- **Decided by:** {what} (rules {rules})")
        elif decided is not None:
            out.append("- **Decided by:** nothing decisive, hence the status (rules quoted below)")
        if c["id"] == "2":
            out += _claim2_table(c)
        elif c["id"] == "3":
            out += ["", *_claim3_tables(c)]
        else:
            out.append("")
    return out + _rules_lines(verdict)


def _rules_lines(verdict: dict[str, Any]) -> list[str]:
    m = verdict.get("method") or {}
    rules = m.get("rules") or {}
    out = ["### The rules, fixed before the data", ""]
    if not rules:
        return [*out, "_This verdict.json predates written rules._", ""]
    out += [f"- **`{name}`**: {md_escape(text)}" for name, text in rules.items()] + [""]
    quality = verdict.get("data_quality") or {}
    for q in quality.values():
        out.append(f"- {md_escape(q.get('note', ''))}")
    excluded = m.get("trials_excluded")
    if excluded is not None:
        out.append(
            f"- {excluded} of {m.get('trials_total', 0)} trials were failed, flagged, client-bound "
            f"or had material send lag, and were left out ({m.get('trials_client_bound', 0)} "
            f"client-bound, {m.get('trials_send_lag', 0)} send lag). Details: `verdict.json`."
        )
    return [*out, ""]


def method_lines(verdict: dict[str, Any] | None) -> list[str]:
    """Bullets for report.md's '## Method' section that come from the verdict's rules."""
    rules = ((verdict or {}).get("method") or {}).get("rules") or {}
    if not rules:
        return []
    return [
        "- Intervals (each names its method), the trials left out (client-bound, send lag) and "
        "the rule that decides each claim are quoted under 'The rules, fixed before the data' "
        "in the Verdict section, exactly as `verdict.json` records them."
    ]
