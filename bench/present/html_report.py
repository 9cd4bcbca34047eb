"""report.html for one run: the verdict, its evidence and charts, conditions and trials on one page.

Written beside report.md from the run folder alone (run.json, the trial table,
verdict.json, charts/), so ``bench report RUN`` rewrites it without measuring.
The page is self-contained (``bench.present.html_page``): open it from disk,
copy the folder anywhere, no network is needed.

Each chart of ``bench.present.chart_catalogue`` the run drew is shown once, under
the first claim whose scenarios it reads (``CLAIM_SCENARIOS``); a later claim that
reads it links to it. Charts no claim reads (the crossover, churn) follow the
questions beside the claims.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from bench import metrics
from bench.measure.scenarios import active_scaling, fd_limit, idle_scaling, idle_steps, micro
from bench.present.chart_catalogue import CATALOGUE, Chart
from bench.present.charts import latency_rows, merged_cells
from bench.present.html_page import (
    chart_figure,
    chart_files,
    document,
    esc,
    filter_box,
    slug,
    table,
    write_page,
)
from bench.present.html_verdict import (
    claim_section,
    questions_section,
    rules_of,
    rules_section,
    summary_table,
)
from bench.present.report import loadgen_core_words
from bench.store import schema
from bench.store.results import RunData
from bench.store.verdict_file import Verdict
from bench.tables import TrialStatus

# The scenarios each claim's analysis reads (bench.analyse.claim1: fd-limit; claim2:
# idle-scaling and active-scaling; claim3: idle-scaling, with idle-steps' in-server
# growth and the micro benchmarks).
CLAIM_SCENARIOS: dict[str, tuple[str, ...]] = {
    "1": (fd_limit.NAME,),
    "2": (idle_scaling.NAME, active_scaling.NAME),
    "3": (idle_scaling.NAME, idle_steps.NAME, micro.NAME),
}

# The trial table's columns: the cell, its repetition and outcome, then the measured
# metrics ``bench compare`` compares (bench.metrics); every column is in trials.csv.
_TRIAL_KEYS = (*schema.CELL_KEYS, "repetition", "status", "flagged", "flag_reasons",
               "failure_reason")  # fmt: skip

# run.json records a failed quiet check as a warning in these words
# (bench.commands.run._quiet_or_warning); no other key records it.
_BUSY_WARNING = "busy machine"


def _cell(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return esc(value)


def _bad(trials: pd.DataFrame) -> pd.Series:
    return (trials["status"] != TrialStatus.OK) | trials["flagged"].fillna(False).astype(bool)


def trial_table(trials: pd.DataFrame) -> str:
    """Every trial, sortable and filterable; failed and flagged ones in grey."""
    if trials.empty:
        return "<p>No trials.</p>"
    cols = [c for c in (*_TRIAL_KEYS, *metrics.compared()) if c in trials.columns]
    bad = _bad(trials).tolist()
    rows = [[_cell(v) for v in rec] for rec in trials[cols].itertuples(index=False)]
    classes = ["flagged" if b else "" for b in bad]
    return filter_box("trials", len(rows), "trials") + table(
        [esc(c) for c in cols], rows, table_id="trials", sortable=True, row_classes=classes
    )


def _flagged_table(trials: pd.DataFrame) -> str:
    if trials.empty:
        return "<p>No trials.</p>"
    bad = trials[_bad(trials)]
    if bad.empty:
        return f"<p>None: every one of the {len(trials)} trials was usable.</p>"
    cols = ["scenario", "backend", "mode", "idle_connections", "active_connections",
            "repetition", "status", "flag_reasons", "failure_reason"]  # fmt: skip
    rows = [[_cell(v) for v in rec] for rec in bad[cols].itertuples(index=False)]
    return f"<p>{len(bad)} of {len(trials)} trials failed or were flagged:</p>" + table(
        cols, rows, table_id="flagged"
    )


def _quiet_check(warnings: list[str]) -> str:
    busy = [w for w in warnings if w.startswith(_BUSY_WARNING)]
    return "failed: " + busy[0] if busy else "passed (no busy-machine warning recorded)"


def conditions_section(run: RunData, verdict: Verdict | None) -> str:
    """Machine, kernel, commit, quiet check, warnings, the trials left out and why."""
    meta = run.meta
    machine = meta.get("machine") or {}
    git = meta.get("git") or {}
    warnings = list(meta.get("warnings") or [])
    finished = meta.get("finished_utc") or "never"
    items: list[tuple[str, Any]] = [
        ("run", f"{run.run_id}: {run.state.describe()}, preset {meta.get('preset')}"),
        ("started / finished", f"{meta.get('created_utc')} / {finished} "
                               f"({meta.get('duration_s')} s)"),
        ("trials done", f"{len(run.trials)} of {meta.get('cells_total')}"),
        ("git commit", f"{git.get('commit')}{' (dirty)' if git.get('dirty') else ''}"),
        ("quiet check", _quiet_check(warnings)),
        ("placement", (meta.get("placement") or {}).get("kind", "local")),
        ("load generator loop", loadgen_core_words(run.trials)),
    ]  # fmt: skip
    for key in schema.MACHINE_KEYS:
        value = machine.get(key)
        if key == "packages" and isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in sorted(value.items()))
        elif isinstance(value, list | dict):
            value = json.dumps(value)
        items.append((key, value))
    rows = [[esc(k), esc(v)] for k, v in items]
    m = verdict.method if verdict else {}
    left_out = ""
    if m.get("trials_total") is not None:
        left_out = (
            f"<p>The verdict left out {esc(m.get('trials_excluded'))} of "
            f"{esc(m.get('trials_total'))} trials (failed or with a fault); "
            f"{esc(m.get('trials_client_bound'))} client-bound trials stayed in; "
            f"{esc(m.get('trials_send_lag'))} had material send lag.</p>"
        )
    return (
        '<section id="conditions"><h2>Conditions and warnings</h2>'
        + _warnings_box(warnings, verdict)
        + table(["item", "value"], rows, table_id="machine")
        + "<h3>Flagged and failed trials</h3>"
        + _flagged_table(run.trials)
        + left_out
        + "</section>"
    )


def _warnings_box(warnings: list[str], verdict: Verdict | None) -> str:
    every = list(dict.fromkeys([*warnings, *(verdict.warnings if verdict else [])]))
    if not every:
        return "<p>No warnings recorded.</p>"
    items = "".join(f"<li>{esc(w)}</li>" for w in every)
    return (
        f'<div class="warn"><b>Read this run with these warnings in mind:</b><ul>{items}</ul></div>'
    )


_LATENCY_HEADER = ("backend", "idle connections", "p50 (µs)", "p99 (µs)", "samples",
                   "repetitions merged")  # fmt: skip


def _latency_table(run: RunData) -> str:
    """The latency chart's points with the samples each rests on (merged HdrHistograms)."""
    rows, mode = latency_rows(run)
    cells = merged_cells(run, rows) if not rows.empty else pd.DataFrame()
    if cells.empty:
        return (
            "<p>No usable repetition kept its raw histogram: the points are medians of "
            "per-trial values.</p>"
        )
    body = [
        [esc(r["backend"]), _cell(r["idle_connections"]), _cell(r["p50_us"]), _cell(r["p99_us"]),
         esc(f"{int(r['samples']):,}"), esc(r["trials_merged"])]
        for r in cells.to_dict("records")
    ]  # fmt: skip
    return (
        f"<p>Each point: the percentile of the usable repetitions' HdrHistograms merged "
        f"({esc(mode)} loop; the per-trial percentiles are in the trial table).</p>"
        + table(_LATENCY_HEADER, body)
    )


# Text a chart's figure carries below it on the page, by chart name.
_CHART_NOTES = {"latency_vs_idle": _latency_table}


class _Charts:
    """Embeds each chart the run drew once and links to it after."""

    def __init__(self, run: RunData) -> None:
        self.run = run
        self.dir = run.charts_dir
        self.present = set(chart_files(self.dir))
        self.placed: dict[str, str] = {}

    def html(self, charts: list[Chart], where: str) -> str:
        parts = []
        for chart in charts:
            if chart.name not in self.present:
                continue
            if chart.name in self.placed:
                parts.append(
                    f'<p>Chart: <a href="#chart-{slug(chart.name)}">{esc(chart.caption)}</a> '
                    f"(shown under {esc(self.placed[chart.name])}).</p>"
                )
                continue
            reads = f'<p class="muted">Reads the scenarios {esc(", ".join(chart.scenarios()))}.</p>'
            note = _CHART_NOTES.get(chart.name)
            figure = chart_figure(
                self.dir, chart.name, chart.caption, reads + (note(self.run) if note else "")
            )
            if figure:
                self.placed[chart.name] = where
                parts.append(figure)
        return "".join(parts)

    def rest(self) -> str:
        """Every chart not yet shown: the catalogue's, then any other file in charts/."""
        known = {c.name for c in CATALOGUE}
        html = self.html([c for c in CATALOGUE if c.name not in self.placed], "other charts")
        for name in sorted(self.present - known):
            html += chart_figure(self.dir, name, name.replace("_", " ")) or ""
        return html


def _claim_charts(claim_id: str) -> list[Chart]:
    reads = set(CLAIM_SCENARIOS.get(claim_id, ()))
    return [c for c in CATALOGUE if reads & set(c.scenarios())]


def render_html_report(run: RunData, verdict: Verdict | None) -> str:
    """The whole page for one run."""
    meta = run.meta
    git = meta.get("git") or {}
    charts = _Charts(run)
    head = (
        f"<h1>select vs poll vs epoll: run {esc(run.run_id)}</h1>"
        f"<p>Status <b>{esc(run.state.describe())}</b>, preset <code>{esc(meta.get('preset'))}"
        f"</code>, started {esc(meta.get('created_utc'))}, commit <code>"
        f"{esc(str(git.get('commit'))[:12])}</code>{' (dirty)' if git.get('dirty') else ''}; "
        f"{len(run.trials)} of {esc(meta.get('cells_total'))} trials. "
        '<a href="#conditions">Conditions</a> · <a href="#trial-table">Trials</a> · '
        '<a href="#rules">Rules</a></p>'
    )
    warnings = list(dict.fromkeys([*(meta.get("warnings") or []),
                                   *(verdict.warnings if verdict else [])]))  # fmt: skip
    if warnings:
        head += (
            f'<p class="warn">This run recorded {len(warnings)} warning(s): '
            '<a href="#conditions">read them</a> before the verdict.</p>'
        )
    if verdict is None:
        body = (
            "<h2>Verdict</h2><p>No verdict computed: run "
            "<code>python -m bench report RUN</code>.</p>"
        )
        claims = ""
        questions = rules = ""
    else:
        body = '<section id="verdict"><h2>Verdict</h2>' + summary_table(verdict) + "</section>"
        rule_texts = rules_of(verdict)
        claims = "".join(
            claim_section(c, rule_texts, charts.html(_claim_charts(c.id), f"claim {c.id}"))
            for c in verdict.claims
        )
        questions = questions_section(verdict, rule_texts)
        rules = rules_section(verdict)
    other = charts.rest()
    other = f'<section id="other-charts"><h2>Other charts</h2>{other}</section>' if other else ""
    if not charts.present:
        other = (
            "<p>No charts in this run: draw them with <code>python -m bench plot RUN</code>.</p>"
        )
    trials = (
        '<section id="trial-table"><h2>Trials</h2>'
        f"<p>One row per trial; every column is in <code>{schema.TRIALS_CSV}</code>.</p>"
        + trial_table(run.trials)
        + "</section>"
    )
    footer = (
        f'<p class="muted">Regenerate with <code>python -m bench report {esc(run.path.name)}'
        "</code>. This page works offline: everything it shows is inside it.</p>"
    )
    return document(
        f"run {run.run_id}: select vs poll vs epoll",
        head + body + claims + questions + other + conditions_section(run, verdict) + trials
        + rules + footer,
    )  # fmt: skip


def write_html_report(run: RunData, verdict: Verdict | None = None) -> Path:
    """Write report.html into the run folder; returns its path."""
    from bench.store.verdict_file import read_verdict

    verdict = verdict if verdict is not None else read_verdict(run.path)
    return write_page(run.path / schema.REPORT_HTML, render_html_report(run, verdict))
