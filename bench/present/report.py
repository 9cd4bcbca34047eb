"""report.md for one run: verdict with its conditions, method, machine, charts, flags, warnings.

Written from the run folder alone (run.json, tables, verdict, charts/), so
`bench report RUN` can rewrite it at any time without measuring.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from bench import metrics
from bench.analyse.families import family_of
from bench.analyse.rules import HEADLINE_FAMILY, STEAL_FRACTION_MAX
from bench.analyse.stats import summarise_cells, usable_trials
from bench.present.chart_catalogue import CATALOGUE, CHART_CAPTIONS
from bench.present.verdict_md import md_escape, md_table, method_lines, verdict_section
from bench.store import schema
from bench.store.results import RunData, atomic_write_bytes
from bench.tables import TrialStatus
from servers.registry import family_label


def _machine_section(meta: dict[str, Any], trials: pd.DataFrame) -> list[str]:
    machine = meta.get("machine") or {}
    rows = []
    for key in schema.MACHINE_KEYS:
        if key == "packages":
            continue
        rows.append(
            {
                "item": key,
                "value": json.dumps(machine.get(key))
                if isinstance(machine.get(key), list | dict)
                else machine.get(key),
            }
        )
    packages = machine.get("packages") or {}
    if packages:
        rows.append(
            {
                "item": "packages",
                "value": ", ".join(f"{k} {v}" for k, v in sorted(packages.items())),
            }
        )
    git = meta.get("git") or {}
    rows.append(
        {
            "item": "git commit",
            "value": f"{git.get('commit')}{' (dirty)' if git.get('dirty') else ''}",
        }
    )
    rows.append({"item": "load generator loop", "value": loadgen_core_words(trials)})
    return ["## Machine", "", md_table(pd.DataFrame(rows)), ""]


def loadgen_core_words(trials: pd.DataFrame) -> str:
    """Which send/receive loop the load generator ran, over the trials that recorded one."""
    col = metrics.LOADGEN_CORE.name
    cores = trials[col].dropna().astype(str) if col in trials.columns else pd.Series([], dtype=str)
    if cores.empty:
        return "not recorded"
    counts = cores.value_counts()
    return ", ".join(f"{core} in {n} of {len(cores)} trials" for core, n in counts.items())


def _backends_words(backends: list[str]) -> str:
    """'select, poll, epoll' or, with several families, 'Python: ...; C: c-select, ...'."""
    groups: dict[str, list[str]] = {}
    for b in backends:
        groups.setdefault(family_label(family_of(b) or HEADLINE_FAMILY), []).append(b)
    if len(groups) < 2:
        return ", ".join(backends) or "none"
    return "; ".join(f"{label}: {', '.join(names)}" for label, names in groups.items())


def _method_section(run: RunData, verdict: dict[str, Any] | None = None) -> list[str]:
    verdict = verdict if verdict is not None else run.verdict
    cfg = run.meta.get("config") or {}
    trials = run.trials
    scen = sorted(trials["scenario"].dropna().unique()) if not trials.empty else []
    backends = sorted(trials["backend"].dropna().unique()) if not trials.empty else []
    reps = (
        int(trials["repetition"].max()) + 1
        if not trials.empty and trials["repetition"].notna().any()
        else 0
    )
    out = [
        "## Method",
        "",
        f"- Scenarios: {', '.join(scen) or 'none'}"
        f"{'; micro benchmarks' if not run.micro.empty else ''}.",
        f"- Backends: {_backends_words(backends)}; up to {reps} repetitions per cell, each "
        "holding every cell once so drift hits all backends alike; within a repetition the "
        "cells, and each cell's backends side by side, run in a seeded random order "
        "(order_seed in run.json; order_index and position_in_repetition in the trial table).",
        "- Each server is its own process pinned to its own CPU, the load generator on the others; "
        "phases verify, warm-up, measure; server counters and CPU read at the edges of the "
        "measured window. Latencies are corrected for coordinated omission (open loop, from the "
        "intended send "
        "time); uncorrected ones are kept in the tables.",
        "- A trial is flagged when the load generator was saturated, the achieved rate fell short, "
        "errors occurred or the hypervisor stole more than "
        f"{STEAL_FRACTION_MAX:.0%} of the machine's CPU time in its window; flagged trials are "
        "faults, drawn hollow and grey and left out of the verdict. Client-bound trials stay "
        "in; the verdict's sensitivity table shows every status with them left out.",
        *method_lines(verdict),
        "- The full configuration is in `run.json` (`config`):",
        "",
        "```json",
        json.dumps(cfg, indent=2, default=str)[:4000],
        "```",
        "",
    ]
    return out


def _charts_section(run: RunData) -> list[str]:
    out = ["## Charts", ""]
    pngs = sorted(run.charts_dir.glob("*.png")) if run.charts_dir.is_dir() else []
    if not pngs:
        return [*out, "_No charts yet: run `python -m bench plot RUN`._", ""]
    order = list(CHART_CAPTIONS)
    pngs.sort(key=lambda p: (order.index(p.stem) if p.stem in order else 99, p.name))
    for png in pngs:
        caption = CHART_CAPTIONS.get(png.stem, png.stem.replace("_", " "))
        out += [f"### {caption}", "", f"![{caption}]({schema.CHARTS_DIR}/{png.name})", ""]
    return out


def _summary_tables(run: RunData) -> list[str]:
    trials = run.trials
    if trials.empty:
        return []
    out = ["## Medians per cell", ""]
    # One table per chart that declares one (bench.present.chart_catalogue), in its order.
    for chart in CATALOGUE:
        if chart.table is None:
            continue
        metric, x_col = chart.table.metric, chart.table.x
        rows = trials[trials["scenario"].isin(chart.scenarios())]
        rows = rows[rows[metric].notna()]
        if rows.empty:
            continue
        scenario = ", ".join(sorted(rows["scenario"].dropna().unique()))
        summ = summarise_cells(rows, metric, keys=("mode", "backend", x_col))
        summ = summ[~summ["flagged_only"].astype(bool)]
        if summ.empty:
            continue
        pivot = summ.pivot_table(
            index=["mode", x_col], columns="backend", values="median"
        ).reset_index()
        out += [f"**{scenario}: median {metric}** (usable repetitions)", "", _medians(pivot), ""]
    return out + _metric_tables(trials)


def _medians(pivot: pd.DataFrame) -> str:
    return md_table(
        pivot.map(lambda v: ("" if v != v else f"{v:.4g}") if isinstance(v, float) else v)
    )


def _metric_tables(trials: pd.DataFrame) -> list[str]:
    """A table of medians per cell for each metric the catalogue marks ``reported`` (a
    plugin's, bench.metrics): one per scenario that recorded it, backends side by side."""
    out: list[str] = []
    keys = ("mode", "idle_connections", "active_connections")
    for metric in metrics.reported():
        if metric.name not in trials.columns:
            continue
        rows = trials[trials[metric.name].notna()]
        for scenario, grp in rows.groupby("scenario", sort=True):
            summ = summarise_cells(grp, metric.name, keys=(*keys, "backend"))
            summ = summ[~summ["flagged_only"].astype(bool)]
            if summ.empty:
                continue
            pivot = summ.pivot_table(
                index=list(keys), columns="backend", values="median"
            ).reset_index()
            better = f"; {metric.better} is better" if metric.better is not None else ""
            out += [
                f"**{scenario}: median {metric.name}** ({metric.unit}{better}; usable "
                f"repetitions): {md_escape(metric.description)}",
                "",
                _medians(pivot),
                "",
            ]
    return out


def _flags_section(run: RunData) -> list[str]:
    trials = run.trials
    out = ["## Flagged and failed trials", ""]
    if trials.empty:
        return [*out, "_No trials._", ""]
    bad = trials[
        (trials["status"] != TrialStatus.OK) | trials["flagged"].fillna(False).astype(bool)
    ]
    if bad.empty:
        return [*out, "None: every trial was usable.", ""]
    cols = ["scenario", "backend", "mode", "idle_connections", "active_connections", "repetition",
            "status", "flag_reasons", "failure_reason"]  # fmt: skip
    n_usable = len(usable_trials(trials))
    return [
        *out,
        f"{len(bad)} of {len(trials)} trials ({n_usable} usable):",
        "",
        md_table(bad[cols]),
        "",
    ]


def render_report(run: RunData, verdict: dict[str, Any] | None = None) -> str:
    verdict = verdict if verdict is not None else run.verdict
    meta = run.meta
    git = meta.get("git") or {}
    lines = [
        f"# select vs poll vs epoll: run {run.run_id}",
        "",
        f"Status **{md_escape(run.state.describe())}**, preset `{meta.get('preset')}`, "
        f"started {meta.get('created_utc')}, "
        f"finished {meta.get('finished_utc') or 'never'}, {meta.get('duration_s')} s; "
        f"{len(run.trials)} of {meta.get('cells_total')} trials done; commit "
        f"`{str(git.get('commit'))[:12]}`{' (dirty)' if git.get('dirty') else ''}.",
        "",
    ]
    warnings = meta.get("warnings") or []
    if warnings:
        lines += ["## Warnings", "", *[f"- {md_escape(w)}" for w in warnings], ""]
    lines += verdict_section(verdict)
    lines += _charts_section(run)
    lines += _flags_section(run)
    lines += _summary_tables(run)
    lines += _method_section(run, verdict)
    lines += _machine_section(meta, run.trials)
    lines += ["---", "", "Regenerate with `python -m bench report " + run.path.name + "`; "
              "read the data with `bench.store.results.load(...)`.", ""]  # fmt: skip
    return "\n".join(lines)


def write_report(run: RunData, verdict: dict[str, Any] | None = None) -> Path:
    """Write report.md into the run folder; returns its path."""
    path = run.path / schema.REPORT_MD
    atomic_write_bytes(path, render_report(run, verdict).encode())
    return path
