"""The verdict on a page: statuses at the top, then per claim its evidence, rules and intervals.

Reads the typed verdict (``bench.store.verdict_file.Verdict``); the parts it keeps
as dicts (claim 1's evidence, a comparison's shown blocks, edge vs level, the
crossover and churn answers) are read as the report.md renderer reads them
(``bench.present.verdict_md``). Every interval is printed with its method and
confidence; every rule a claim names is quoted from ``method.rules``, the texts
verdict.json took from ``bench.analyse.rules``.
"""

from __future__ import annotations

from typing import Any

from bench.present.html_page import badge, esc, interval, num, slug, table
from bench.store.verdict_file import Claim, Evidence, FamilyVerdict, Verdict


def rules_of(verdict: Verdict) -> dict[str, str]:
    return dict((verdict.method or {}).get("rules") or {})


def claim_rule_names(
    claim_id: str, block: Claim | FamilyVerdict, rules: dict[str, str]
) -> list[str]:
    """The rules a claim is judged by: ``claim<id>*``, the intervals', those that decided it
    and the overall ones, in the order verdict.json lists them."""
    wanted = {"intervals", *(n for n in rules if n.startswith(f"claim{claim_id}"))}
    if isinstance(block, Claim):
        wanted |= set(block.overall_rules)
    for d in block.decided_by or []:
        wanted |= set(d.get("rules") or [])
    return [n for n in rules if n in wanted]


def _rule_quotes(names: list[str], rules: dict[str, str]) -> str:
    if not names:
        return ""
    quotes = "".join(
        f'<div class="rule" data-rule="{esc(n)}"><code>{esc(n)}</code>: {esc(rules[n])}</div>'
        for n in names
    )
    return f"<details><summary>The rules it is judged by ({len(names)})</summary>{quotes}</details>"


def summary_table(verdict: Verdict) -> str:
    """The verdict at a glance: each claim's overall status, each family's, each regime's."""
    labels: list[str] = []
    for c in verdict.claims:
        for f in c.families.values():
            if f.label not in labels:
                labels.append(f.label)
    header = ["claim", "overall", *[esc(f"{lb} family") for lb in labels], "regimes", "in short"]
    rows = []
    for c in verdict.claims:
        by_label = {f.label: f.status for f in c.families.values()}
        regimes = c.extra.get("regimes") or []
        rows.append(
            [
                f'<a href="#claim-{esc(c.id)}">{esc(c.id)}. {esc(c.claim)}</a>',
                badge(c.status),
                *[badge(by_label[lb]) if lb in by_label else "not judged" for lb in labels],
                "<br>".join(f"{esc(r['regime'])}: {badge(r['status'])}" for r in regimes),
                esc(c.family_agreement if len(c.families) > 1 else c.summary),
            ]
        )
    edge = verdict.edge_vs_level
    if edge:
        by_label = {
            f.get("label"): f.get("status", "") for f in (edge.get("families") or {}).values()
        }
        rows.append(
            [
                f'<a href="#edge-vs-level">{esc(edge.get("question", "edge vs level"))}</a>',
                badge(edge.get("status", "")),
                *[badge(by_label[lb]) if lb in by_label else "not judged" for lb in labels],
                "",
                esc(edge.get("family_agreement", "")),
            ]
        )
    uring = verdict.uring
    if uring and uring.get("answers"):
        answers: dict[str, list[str]] = {}
        for a in uring["answers"]:
            answers.setdefault(a.get("label"), []).append(
                f"{esc(a.get('backend'))}: {badge(a.get('status', ''))}"
            )
        rows.append(
            [
                '<a href="#io-uring">does io_uring beat epoll?</a>',
                badge(uring.get("status", "")),
                *["<br>".join(answers[lb]) if lb in answers else "not measured" for lb in labels],
                "",
                esc(uring.get("sentence", "")),
            ]
        )
    return table(header, rows, table_id="verdict-summary")


def _interval_cell(d: Any) -> str:
    if d is None:
        return "n/a"
    return (
        f"{num(d.ratio)} {interval(d.ci_low, d.ci_high)} "
        f'<span class="muted">({num(d.confidence, 2)}; {esc(d.method)})</span>'
    )


def _regimes_table(evidence: Evidence, vs: str) -> str:
    rows = []
    for regime in evidence.regimes or []:
        for c in regime.comparisons:
            level = c.extra.get("idle_connections", c.extra.get("active_connections"))
            kind = "idle" if "idle_connections" in c.extra else "active"
            rows.append(
                [
                    esc(regime.regime), badge(regime.status), esc(c.backend),
                    esc(f"{num(level)} {kind}, {c.loop} loop"), esc(c.metric),
                    esc(c.ratio_definition), _interval_cell(c.decision),
                    _interval_cell(c.interval_95),
                    badge(c.class_) + ("" if c.judged else " (not judged)"),
                    esc(c.class_reason),
                ]
            )  # fmt: skip
    if not rows:
        return ""
    header = ["regime", "regime status", vs, "cell", "metric", "ratio", "deciding interval",
              "95% interval", "class", "why"]  # fmt: skip
    return table(header, rows)


def _pct(x: Any) -> str:
    if x is None:
        return "n/a"
    return f"x{1 + x:.0f}" if x >= 1 else f"{x * 100:+.0f}%"


def _metrics_tables(evidence: Evidence) -> str:
    out = []
    for m in evidence.metrics or []:
        role = {"primary": "primary: decides", "secondary": "secondary: shown, decides nothing"}
        head = (
            f"<h4>{esc(m.metric)} ({esc(role.get(m.role, m.role))}) {badge(m.status)}</h4>"
            f"<p>{esc(m.conditions or '')} {esc(m.reason)}</p>"
        )
        rows = []
        for backend, f in (m.backends or {}).items():
            rows.append(
                [
                    esc(backend),
                    f"{num(f.slope_per_1000)} "
                    f"{interval(f.slope_per_1000_ci_low, f.slope_per_1000_ci_high)} "
                    f"{esc(m.unit or '')}",
                    f"{_pct(f.projected_rel_increase)} [{_pct(f.projected_rel_increase_ci_low)}, "
                    f"{_pct(f.projected_rel_increase_ci_high)}] over {num(f.x_min, 6)}-"
                    f"{num(f.x_max, 6)}",
                    badge(f.class_),
                    f"{esc(f.method)} ({num(f.confidence, 2)}; {f.n_points} points, "
                    f"{f.n_levels} levels)",
                ]
            )
        header = ["backend", "slope per 1,000 descriptors [interval]", "growth over the range",
                  "class", "method"]  # fmt: skip
        out.append(head + (table(header, rows) if rows else ""))
        out += [f"<p>{esc(t)} (reported; decides nothing)</p>" for t in
                (m.slope_comparison or {}).values()]  # fmt: skip
    return "".join(out)


def _plain(value: Any) -> str:
    """A dict or list the verdict keeps free-form, as nested lists."""
    if isinstance(value, dict):
        items = "".join(f"<li><b>{esc(k)}</b>: {_plain(v)}</li>" for k, v in value.items())
        return f"<ul>{items}</ul>"
    if isinstance(value, list):
        return "<ul>" + "".join(f"<li>{_plain(v)}</li>" for v in value) + "</ul>"
    return esc(num(value) if isinstance(value, float) else value)


def _evidence(claim_id: str, block: Claim | FamilyVerdict) -> str:
    ev = block.evidence
    if ev.regimes is not None:
        subject = (getattr(block, "roles", None) or {}).get("subject") or "epoll"
        return _regimes_table(ev, f"{subject} vs")
    if ev.metrics is not None:
        return _metrics_tables(ev)
    if ev.extra:
        summary = f"<summary>Evidence (claim {esc(claim_id)})</summary>"
        return f"<details>{summary}{_plain(ev.extra)}</details>"
    return ""


def _block_body(claim_id: str, block: Claim | FamilyVerdict, rules: dict[str, str]) -> str:
    lines = [f"<p><b>Conditions:</b> {esc(block.conditions)}</p>",
             f"<p><b>Summary:</b> {esc(block.summary)}</p>",
             f"<p><b>Reason:</b> {esc(block.reason)}</p>"]  # fmt: skip
    shown = block.extra.get("shown")
    if shown:
        lines.append(f"<p><b>What is shown:</b> {esc(shown)}</p>")
    for key in ("limit_location", "select_error"):
        sentence = (block.extra.get(key) or {}).get("sentence")
        if sentence:
            lines.append(
                f"<p><b>{esc(key.replace('_', ' ').capitalize())}:</b> {esc(sentence)}</p>"
            )
    if block.decided_by:
        decided = "; ".join(
            esc(d.get("metric") or f"{d.get('regime')}: {d.get('comparison')}")
            for d in block.decided_by
        )
        lines.append(f"<p><b>Decided by:</b> {decided}</p>")
    elif block.decided_by is not None:
        lines.append("<p><b>Decided by:</b> nothing decisive, hence the status.</p>")
    lines.append(_evidence(claim_id, block))
    lines.append(_rule_quotes(claim_rule_names(claim_id, block, rules), rules))
    return "".join(lines)


def claim_section(claim: Claim, rules: dict[str, str], charts_html: str) -> str:
    """One claim: its status, the headline family's evidence, every other family, its charts."""
    out = [
        f'<section class="claim" id="claim-{esc(claim.id)}" data-claim="{esc(claim.id)}">'
        f"<h2>Claim {esc(claim.id)}: {esc(claim.claim)} {badge(claim.status)}</h2>"
    ]
    if len(claim.families) > 1:
        out.append(f"<p>{esc(claim.family_agreement)}</p>")
    head = claim.families.get(claim.headline_family or "")
    label = head.label if head else "headline"
    out.append(
        f"<h3>{esc(label)} family (headline) {badge(claim.headline_status or claim.status)}</h3>"
    )
    out.append(_block_body(claim.id, claim, rules))
    for key, fam in claim.families.items():
        if key == claim.headline_family:
            continue
        out.append(
            f'<details id="claim-{esc(claim.id)}-{slug(key)}"><summary>{esc(fam.label)} family '
            f"{badge(fam.status)}</summary>{_block_body(claim.id, fam, rules)}</details>"
        )
    out.append(charts_html)
    return "".join(out) + "</section>"


def _uring_html(uring: dict[str, Any] | None, rules: dict[str, str]) -> list[str]:
    """The io_uring question: its answer per family and mechanism, with the cells."""
    if not uring or not uring.get("answers"):
        return []
    out = [
        f'<h3 id="io-uring">Does io_uring beat epoll? {badge(uring.get("status", ""))}</h3>'
        f"<p>{esc(uring.get('sentence', ''))}</p>"
    ]
    for block in uring["answers"]:
        regimes = "".join(
            f"<li>{esc(r['regime'])}: "
            f"{badge(r['status']) if r.get('judged') else 'not judged'} "
            f"{esc(r.get('where', ''))}</li>"
            for r in block.get("regimes") or []
        )
        ev = Evidence.from_dict({"regimes": block.get("regimes") or []})
        out.append(
            f"<h4>{esc(block.get('label'))}: {esc(block.get('mechanism_words'))}, "
            f"{esc(block.get('backend'))} vs {esc(block.get('baseline'))} "
            f"{badge(block.get('status', ''))}</h4>"
            f"<p>{esc(block.get('reason', ''))}</p><ul>{regimes}</ul>"
            + _regimes_table(ev, f"{block.get('backend')} vs")
        )
    out.append(_rule_quotes([n for n in rules if n.startswith("uring")], rules))
    return out


def questions_section(verdict: Verdict, rules: dict[str, str]) -> str:
    """Edge vs level, the crossover, churn and the sensitivity table, where the run has them."""
    out = []
    edge = verdict.edge_vs_level
    if edge:
        out.append(
            f'<h3 id="edge-vs-level">{esc(edge.get("question", ""))} '
            f"{badge(edge.get('status', ''))}"
            f"</h3><p>{esc(edge.get('family_agreement', ''))}</p>"
        )
        for block in (edge.get("families") or {}).values():
            regimes = "".join(
                f"<li>{esc(r['regime'])}: {badge(r['status'])} {esc(r.get('where', ''))}</li>"
                for r in block.get("regimes") or []
            )
            ev = Evidence.from_dict({"regimes": block.get("regimes") or []})
            out.append(
                f"<h4>{esc(block.get('label'))}: {esc(block.get('edge'))} vs "
                f"{esc(block.get('level'))} {badge(block.get('status', ''))}</h4>"
                f"<p>{esc(block.get('reason', ''))}</p><ul>{regimes}</ul>"
                + _regimes_table(ev, f"{block.get('edge')} vs")
            )
        names = [n for n in rules if n.startswith("edge_vs_level")]
        out.append(_rule_quotes(names, rules))
    out += _uring_html(verdict.uring, rules)
    for title, block, key, rule in (
        ("Where is the crossover? (ready-fraction)", verdict.crossover, "summary", "crossover"),
        ("Does epoll's advantage survive churn?", verdict.churn, "sentence", "churn"),
    ):
        if block and block.get(key):
            out.append(f"<h3>{esc(title)}</h3><p>{esc(block[key])}</p>")
            out.append(_rule_quotes([n for n in rules if n.startswith(rule)], rules))
    s = verdict.sensitivity
    if s:
        rows = [[esc(r.where), *[badge(r.statuses[a]) if r.statuses.get(a) else "" for a in
                 s.analyses], "yes" if r.differs else ""] for r in s.rows]  # fmt: skip
        out.append(
            f"<h3>Sensitivity: the client-bound rule</h3><p>{esc(s.sentence)}</p>"
            + table(["status of", *map(esc, s.analyses), "differs"], rows)
            + _rule_quotes(["sensitivity"] if "sensitivity" in rules else [], rules)
        )
    if not out:
        return ""
    return '<section id="questions"><h2>Beside the claims</h2>' + "".join(out) + "</section>"


def rules_section(verdict: Verdict) -> str:
    """Every rule, fixed before the data, as verdict.json records it."""
    rules = rules_of(verdict)
    if not rules:
        return "<p>This verdict.json predates written rules.</p>"
    quotes = "".join(
        f'<div class="rule" id="rule-{slug(n)}"><code>{esc(n)}</code>: {esc(t)}</div>'
        for n, t in rules.items()
    )
    notes = "".join(
        f"<p>{esc(q.get('note', ''))}</p>" for q in (verdict.data_quality or {}).values()
    )
    return (
        '<section id="rules"><h2>The rules, fixed before the data</h2>'
        f"<details><summary>All {len(rules)} rules</summary>{quotes}</details>{notes}</section>"
    )
