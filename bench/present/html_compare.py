"""The page of ``bench compare A B --html``: two runs' verdicts, conditions and cells side by side.

The cells and their intervals are those ``bench.analyse.compare.compare_runs``
computes (the same table ``bench compare`` prints); a row whose interval of B/A
excludes 1 is marked beyond run-to-run noise. Self-contained like a run's page
(``bench.present.html_page``): no chart files are needed, nothing is fetched.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from bench.analyse.compare import MICRO_METHOD, MICRO_MIN_CHANGE, MICRO_PROCESS_METHOD
from bench.present.html_page import badge, document, esc, filter_box, interval, num, table
from bench.store import schema
from bench.store.results import RunData
from bench.store.verdict_file import Verdict, read_verdict

_CELL_COLUMNS = ("table", "scenario", "backend", "protocol", "mode", "idle_connections",
                 "active_connections", "rate_rps_requested", "metric")  # fmt: skip


def _verdict_rows(a: Verdict | None, b: Verdict | None) -> list[list[str]]:
    claims: dict[str, str] = {}
    for v in (a, b):
        for c in v.claims if v else []:
            claims.setdefault(c.id, f"{c.id}. {c.claim}")
    rows = []
    for cid, text in claims.items():
        sa = a.claim(cid) if a else None
        sb = b.claim(cid) if b else None
        cells = [badge(s.status) if s else "not judged" for s in (sa, sb)]
        changed = "changed" if sa and sb and sa.status != sb.status else ""
        rows.append([esc(text), *cells, changed])
    return rows


def _conditions_rows(a: RunData, b: RunData) -> list[list[str]]:
    def items(run: RunData) -> dict[str, Any]:
        meta, git = run.meta, run.meta.get("git") or {}
        machine = meta.get("machine") or {}
        out: dict[str, Any] = {
            "preset": meta.get("preset"), "status": meta.get("status"),
            "started": meta.get("created_utc"),
            "git commit": f"{git.get('commit')}{' (dirty)' if git.get('dirty') else ''}",
            "trials done": f"{meta.get('cells_done')} of {meta.get('cells_total')}",
            "warnings": len(meta.get("warnings") or []),
        }  # fmt: skip
        for key in schema.MACHINE_KEYS:
            value = machine.get(key)
            if key == "packages" and isinstance(value, dict):
                value = ", ".join(f"{k} {v}" for k, v in sorted(value.items()))
            out[key] = json.dumps(value) if isinstance(value, list | dict) else value
        return out

    ia, ib = items(a), items(b)
    return [
        [esc(k), esc(ia.get(k)), esc(ib.get(k)), "differs" if ia.get(k) != ib.get(k) else ""]
        for k in dict.fromkeys([*ia, *ib])
    ]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if value != value else esc(num(value, 6))
    return esc(value)


def _method_ref(method: str, methods: list[str]) -> str:
    return f'<span title="{esc(method)}">{methods.index(method) + 1}</span>'


def _cells_table(df: pd.DataFrame) -> str:
    if df.empty:
        return (
            "<p>No cells in common: the runs measured different scenarios, backends or "
            "connection counts (compare runs of the same preset).</p>"
        )
    # Each method once, above the table; a row names its method by number.
    methods = list(dict.fromkeys(df["ci_method"].astype(str)))
    legend = "".join(f"<li>{esc(m)}</li>" for m in methods)
    rows, classes = [], []
    for rec in df.to_dict("records"):
        beyond = bool(rec["beyond_noise"])
        rows.append(
            [
                *[_cell(rec[c]) for c in _CELL_COLUMNS],
                esc(rec["n_a"]), esc(rec["n_b"]), esc(num(rec["median_a"], 4)),
                esc(num(rec["median_b"], 4)), esc(num(rec["ratio_b_over_a"])),
                esc(interval(rec["ci_low"], rec["ci_high"])),
                _method_ref(str(rec["ci_method"]), methods),
                "beyond noise" if beyond else "",
            ]
        )  # fmt: skip
        classes.append("beyond" if beyond else "")
    header = [*_CELL_COLUMNS, "n A", "n B", "median A", "median B", "B/A", "95% interval",
              "method", "difference"]  # fmt: skip
    legend = f"<p>Interval methods (column 'method'):</p><ol>{legend}</ol>"
    return (
        legend
        + filter_box("cells", len(rows), "comparisons")
        + table(header, rows, table_id="cells", sortable=True, row_classes=classes)
    )


def render_compare_page(a: RunData, b: RunData, df: pd.DataFrame) -> str:
    """The page for two runs and their comparison table (``compare_runs(a, b)``)."""
    va, vb = read_verdict(a.path), read_verdict(b.path)
    n_beyond = int(df["beyond_noise"].sum()) if not df.empty else 0
    head = (
        f"<h1>Run B {esc(b.run_id)} against run A {esc(a.run_id)}</h1>"
        f"<p>{n_beyond} of {len(df)} comparisons differ beyond run-to-run noise (marked, "
        "rows shaded): the 95% interval of B/A excludes 1. B/A is the ratio of geometric "
        f"means; trials: Welch t interval on log values; micro: {esc(MICRO_PROCESS_METHOD)} "
        f"(older runs: {esc(MICRO_METHOD)}) and a change of at least {MICRO_MIN_CHANGE:.0%}.</p>"
    )
    verdicts = table(
        ["claim", f"A {esc(a.run_id)}", f"B {esc(b.run_id)}", ""],
        _verdict_rows(va, vb),
        table_id="verdicts",
    )
    conditions = table(["item", "A", "B", ""], _conditions_rows(a, b), table_id="conditions-ab")
    warnings = "".join(
        f"<li>{esc(side)}: {esc(w)}</li>"
        for side, run in (("A", a), ("B", b))
        for w in run.meta.get("warnings") or []
    )
    body = (
        head
        + '<section id="verdicts-section"><h2>Verdicts</h2>'
        + verdicts
        + "</section>"
        + '<section id="cells-section"><h2>Cells side by side</h2>'
        + _cells_table(df)
        + "</section>"
        + '<section id="conditions"><h2>Conditions</h2>'
        + (f'<div class="warn"><b>Warnings:</b><ul>{warnings}</ul></div>' if warnings else "")
        + conditions
        + "</section>"
        + '<p class="muted">Each run\'s own page: <code>report.html</code> in its folder. '
        "This page works offline: everything it shows is inside it.</p>"
    )
    return document(f"compare {a.run_id} and {b.run_id}", body)
