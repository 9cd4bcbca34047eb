"""The verdict in report.md: statuses, what decided each claim, every interval with its method,
and the rules quoted verbatim from verdict.json (which took them from bench.analyse.rules).

Each claim is shown for the headline (Python) family, then for every other family
judged, after a table of every family's status and the sentence on where they agree;
the edge- against level-triggered epoll entry follows the claims.

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
    subject = (claim.get("roles") or {}).get("subject") or "epoll"
    return _cells_table(claim.get("evidence", {}).get("regimes", []), f"{subject} vs")


def _shown_ratio(d: dict[str, Any] | None) -> str:
    if not d or not d.get("recorded"):
        return "not recorded"
    return f"{_num(d.get('ratio'))} {_interval(d)}"


def _shares(c: dict[str, Any]) -> str:
    """'epoll 0.3%, select 2.1%' of server CPU per request in the wait call, with per event."""
    bits = []
    for b, v in (c.get("mechanism") or {}).items():
        share, per_event = v.get("wait_share_of_cpu_per_request"), v.get("wait_us_per_event")
        if share is None and per_event is None:
            continue
        text = f"{b} {share:.1%}" if share is not None else f"{b} n/a"
        if per_event is not None:
            text += f" ({_num(per_event)} us/event)"
        bits.append(text)
    return ", ".join(bits) or "not recorded"


def _micro_all(c: dict[str, Any]) -> str:
    rows = c.get("micro_all_ready") or {}
    return ", ".join(
        f"{b} {_num(v['median_us_per_call'])} us at {v['n_registered']}" for b, v in rows.items()
    )


def _cells_table(regimes: list[dict[str, Any]], vs: str) -> list[str]:
    """One row per compared cell (claim 2, edge vs level), then the pooled summaries."""
    rows = []
    for regime in regimes:
        for c in regime.get("comparisons", []):
            if "decision" not in c:
                continue  # a verdict.json written before the equivalence rule
            d, w = c["decision"], c["interval_95"]
            level = c.get("idle_connections", c.get("active_connections"))
            shown = c.get("shown") or {}
            row = {
                "regime": regime["regime"], vs: c["backend"],
                "cell": f"{int(level)} {'idle' if 'idle_connections' in c else 'active'}, "
                f"{c['loop']} loop",
                "ratio": f"{_num(d['ratio'])} ({c['ratio_definition']})",
                f"{d['confidence']:.0%} interval (decides)": _interval(d),
                f"{w['confidence']:.0%} interval": _interval(w),
                "class": c["class"] if c["judged"] else f"{c['class']} (not judged)",
            }  # fmt: skip
            if shown:
                row["machine CPU per request (shown)"] = _shown_ratio(
                    shown.get("machine_cpu_per_request")
                )
                row["throughput (shown)"] = _shown_ratio(shown.get("throughput"))
            if "mechanism" in c:
                row["wait call share of CPU per request"] = _shares(c)
            if any(r.get("micro_all_ready") for r in regime.get("comparisons", [])):
                row["micro, every descriptor ready"] = _micro_all(c)
            row["method"] = d["method"]
            rows.append(row)
    out = ["", md_table(pd.DataFrame(rows)), ""] if rows else []
    undecided = [
        c["class_reason"]
        for regime in regimes
        for c in regime.get("comparisons", [])
        if c.get("class") == "INCONCLUSIVE" and c.get("judged")
    ]
    out += [f"- Undecided: {md_escape(r)}" for r in undecided]
    for regime in regimes:
        for other, p in (regime.get("pooled_summary") or {}).items():
            cells = "/".join(str(int(v)) for v in p.get("cells", []))
            out.append(
                f"- {regime['regime']} summary, {vs} {other} over {cells} connections: "
                f"{_num(p['ratio'])}x {_interval(p)} ({p['confidence']:.0%}, {p['method']}); "
                "decides nothing."
            )
    return [*out, ""] if out else []


def _claim3_tables(claim: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for m in claim.get("evidence", {}).get("metrics", []):
        where = f" ({m['conditions']})" if m.get("conditions") else ""
        role = {"primary": " (primary: decides)", "secondary": " (secondary: shown, decides "
                "nothing)"}.get(m.get("role", ""), "")  # fmt: skip
        out += [f"**{m['metric']}**{role} — {m['status']}{where}", ""]
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
                        f"{_num(v['x_min'], 6)}-{_num(v['x_max'], 6)}"
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


def _family_table(verdict: dict[str, Any]) -> list[str]:
    """Every family's status per claim and for edge vs level, with the sentence that sums up."""
    claims = [c for c in verdict.get("claims", []) if c.get("families")]
    edge = verdict.get("edge_vs_level")
    entries = [(f"{c['id']}. {c['claim']}", c) for c in claims]
    if edge:
        entries.append((edge["question"], edge))
    if not entries:
        return []  # a verdict.json written before families
    labels: list[str] = []
    for _, e in entries:
        for f in (e.get("families") or {}).values():
            if f["label"] not in labels:
                labels.append(f["label"])
    rows = []
    for name, e in entries:
        by_label = {f["label"]: f["status"] for f in (e.get("families") or {}).values()}
        row = {"": name, "overall": f"**{e['status']}**"}
        row.update({label: by_label.get(label, "not judged") for label in labels})
        row["where the families agree and differ"] = e.get("family_agreement", "")
        rows.append(row)
    return ["### By family", "", md_table(pd.DataFrame(rows)), ""]


def _decided_lines(block: dict[str, Any]) -> list[str]:
    out = []
    decided = block.get("decided_by")
    if decided:
        for d in decided:
            what = d.get("metric") or f"{d.get('regime')}: {d.get('comparison')}"
            rules = ", ".join(f"`{r}`" for r in d.get("rules", []))
            out.append(f"- **Decided by:** {what} (rules {rules})")
    elif decided is not None:
        out.append("- **Decided by:** nothing decisive, hence the status (rules quoted below)")
    return out


def _claim_body(claim_id: str, block: dict[str, Any]) -> list[str]:
    out = [f"- **Conditions:** {block['conditions']}", f"- **Reason:** {block['reason']}"]
    if block.get("shown"):
        out.append(f"- **What is shown:** {block['shown']}")
    out += _decided_lines(block)
    if claim_id == "2":
        out += _claim2_table(block)
    elif claim_id == "3":
        out += ["", *_claim3_tables(block)]
    else:
        out.append("")
    return out


def _limit_lines(c: dict[str, Any]) -> list[str]:
    """Claim 1, across families: where the 1024 lives and select's own error (absent in
    other claims and older verdicts)."""
    out = []
    where = c.get("limit_location") or {}
    if where.get("sentence"):
        out.append(f"- **Where the 1024 lives:** {md_escape(where['sentence'])} "
                   f"(rule `{where.get('rule')}`)")  # fmt: skip
    error = c.get("select_error") or {}
    if error.get("sentence"):
        out.append(f"- **select's own error:** {md_escape(error['sentence'])}")
    return [*out, ""] if out else []


def _claim_lines(c: dict[str, Any]) -> list[str]:
    out = [f"### Claim {c['id']}: {c['claim']} — {c['status']}", "", *_limit_lines(c)]
    families = c.get("families") or {}
    head = families.get(c.get("headline_family", ""), {})
    if len(families) > 1:
        out += [
            f"{c.get('family_agreement', '')} (rule `family_overall`).",
            "",
            f"#### {head.get('label', 'Python')} family (headline): {c.get('headline_status')}",
            "",
        ]
    out += _claim_body(c["id"], c)
    for fam, block in families.items():
        if fam == c.get("headline_family"):
            continue
        roles = block.get("roles") or {}
        others = " and ".join(roles.get("comparators") or []) or "no select or poll backend"
        out += [
            f"#### {block['label']} family ({roles.get('subject')} against {others}): "
            f"{block['status']}",
            "",
            *_claim_body(c["id"], block),
        ]
    return out


def _edge_lines(edge: dict[str, Any] | None) -> list[str]:
    if not edge:
        return []
    margin = edge.get("margin") or [float("nan"), float("nan")]
    out = [
        f"### Edge-triggered vs level-triggered epoll — {edge['status']}",
        "",
        f"{edge.get('family_agreement', '')}. Per cell: the {edge.get('confidence', 0):.0%} "
        f"interval of the efficiency ratio against [{_num(margin[0])}, {_num(margin[1])}] "
        "(rules `edge_vs_level`, `edge_vs_level_family`, `edge_vs_level_overall`).",
        "",
    ]
    for block in (edge.get("families") or {}).values():
        out += [
            f"#### {block['label']}: {block['edge']} vs {block['level']} — {block['status']}",
            "",
            f"- **Reason:** {block['reason']}",
        ]
        out += [f"- {r['regime']}: {r['status']} ({r['where']})" for r in block["regimes"]]
        growth = block.get("edge_growth") or {}
        if growth:
            words = "; ".join(f"{m}: {cls}" for m, cls in growth.items())
            out.append(f"- {block['edge']}'s growth against descriptors (claim 3's rule, "
                       f"decides nothing here): {words}")  # fmt: skip
        out += _cells_table(block["regimes"], f"{block['edge']} vs")
    return out


def _uring_lines(uring: dict[str, Any] | None) -> list[str]:
    if not uring or not uring.get("answers"):
        return []
    margin = uring.get("margin") or [float("nan"), float("nan")]
    out = [
        f"### Does io_uring beat epoll? — {uring['status']}",
        "",
        f"{uring.get('sentence', '')}. Per cell: the {uring.get('confidence', 0):.0%} interval "
        f"of the baseline's server CPU per request over io_uring's against "
        f"[{_num(margin[0])}, {_num(margin[1])}] (rules `uring_cell`, `uring_regime`, `uring`, "
        "`uring_overall`, written before any io_uring data).",
        "",
    ]
    for block in uring["answers"]:
        out += [
            f"#### {block['label']}: {block['mechanism_words']}, {block['backend']} vs "
            f"{block['baseline']} — {block['status']}",
            "",
            f"- **Reason:** {block['reason']}",
        ]
        out += [
            f"- {r['regime']}: {r['status'] if r.get('judged') else 'not judged'} ({r['where']})"
            for r in block["regimes"]
        ]
        growth = block.get("growth")
        if growth:
            out.append(f"- {block['backend']}'s {growth['metric']} against idle descriptors "
                       f"(rule `uring_flat`, decides nothing here): {growth['class']}, "
                       f"{growth['reason']}")  # fmt: skip
        out += _cells_table(block["regimes"], f"{block['backend']} vs")
    return out


def verdict_section(verdict: dict[str, Any] | None) -> list[str]:
    """The '## Verdict' section of report.md."""
    if not verdict:
        return ["## Verdict", "", "_No verdict computed: run `python -m bench report RUN`._", ""]
    rows = []
    for c in verdict.get("claims", []):
        families = c.get("families") or {}
        several = len(families) > 1
        # Several families: the overall status with the sentence; the regimes are the headline's.
        head = f" ({families[c['headline_family']]['label']})" if several else ""
        evidence = c.get("family_agreement", "") if several else c.get("summary", "")
        rows.append({"claim": f"{c['id']}. {c['claim']}", "status": f"**{c['status']}**",
                     "evidence": evidence})  # fmt: skip
        for r in c.get("regimes", []):
            rows.append(
                {"claim": f"{c['id']} when {r['regime']}{head}", "status": r["status"],
                 "evidence": r["where"]}
            )  # fmt: skip
    out = ["## Verdict", ""]
    warnings = verdict.get("warnings") or []
    if warnings:
        out += ["**This run recorded warnings; read the verdict with them in mind:**", ""]
        out += [f"- {md_escape(w)}" for w in warnings] + [""]
    out += [md_table(pd.DataFrame(rows)), ""]
    out += _family_table(verdict)
    for c in verdict.get("claims", []):
        out += _claim_lines(c)
    out += _edge_lines(verdict.get("edge_vs_level"))
    out += _uring_lines(verdict.get("uring"))
    out += _question_lines("Where is the crossover? (ready-fraction)", verdict.get("crossover"),
                           "summary")  # fmt: skip
    out += _question_lines("Does epoll's advantage survive churn?", verdict.get("churn"),
                           "sentence")  # fmt: skip
    out += sensitivity_lines(verdict.get("sensitivity"))
    return out + _rules_lines(verdict)


def sensitivity_lines(block: dict[str, Any] | None) -> list[str]:
    """Every status with and without the client-bound rule (absent in older verdicts)."""
    if not block:
        return []
    first, second = block["analyses"]
    rows = [
        {"status of": r["where"], first: r[first], second: r[second],
         "differs": "yes" if r["differs"] else ""}
        for r in block["statuses"]
    ]  # fmt: skip
    return [
        "### Sensitivity: the client-bound rule",
        "",
        f"{md_escape(block['sentence'])} (rule `sensitivity`; the verdict above is the first "
        "column.)",
        "",
        md_table(pd.DataFrame(rows)),
        "",
    ]


def _question_lines(title: str, block: dict[str, Any] | None, key: str) -> list[str]:
    """A question the run answers beside the three claims (absent in older verdicts)."""
    if not block or not block.get(key):
        return []
    return [f"### {title}", "", str(block[key]), ""]


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
    if excluded is not None and "trials_steal" in m:
        out.append(
            f"- {excluded} of {m.get('trials_total', 0)} trials were failed or had a fault "
            f"(flagged, or steal over its bound: {m.get('trials_steal', 0)}) and were left out; "
            f"{m.get('trials_client_bound', 0)} client-bound trials stayed in (left out only in "
            f"the sensitivity analysis); {m.get('trials_send_lag', 0)} had material send lag "
            "(latency charts only). Details: `verdict.json`."
        )
    elif excluded is not None:  # a verdict.json written before faults-only exclusions
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
    out = [
        "- Intervals (each names its method), the trials left out (faults only), the "
        "client-bound sensitivity analysis and "
        "the rule that decides each claim are quoted under 'The rules, fixed before the data' "
        "in the Verdict section, exactly as `verdict.json` records them."
    ]
    if "families" in rules:
        out.append(
            "- Each claim is judged per family of backends (rule `families`): within a family, "
            "'epoll', 'select' and 'poll' are its backends of those mechanisms; the overall "
            "status follows rule `family_overall`. Edge- against level-triggered epoll is "
            "judged per family that has both (rule `edge_vs_level`)."
        )
    return out
