"""The latency distribution chart: merged HdrHistograms of every repetition, per backend.

Percentiles are never averaged: the raw histograms of a cell's repetitions are
merged, then read (locust's and HdrHistogram's rule).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from bench import metrics
from bench.analyse.stats import usable_latency_trials, usable_trials
from bench.present.chart_style import (
    flagged_legend,
    order,
    plain_log_y,
    rows_in_mode,
    series_style,
)
from bench.present.latency_merge import merged_histogram, percentile_us
from bench.store.results import RunData
from bench.tables import Mode

PERCENTILE_GRID = (50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99)


def latency_distribution(run: RunData, rows: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], str]:
    """Per backend: percentile -> latency (µs), from merged raw histograms, else columns."""
    out: dict[str, pd.DataFrame] = {}
    sources = set()
    for backend, grp in rows.groupby("backend"):
        merged, _ = merged_histogram(run, grp)
        if merged is not None and merged.get_total_count() > 0:
            pts = [(p, percentile_us(merged, p)) for p in (*PERCENTILE_GRID, 100.0)]
            out[str(backend)] = pd.DataFrame(pts, columns=["percentile", "latency_us"]).assign(
                samples=int(merged.get_total_count())
            )
            sources.add("merged HdrHistograms of all repetitions")
        else:
            cols = {50.0: metrics.LATENCY_P50_US.name, 90.0: metrics.LATENCY_P90_US.name,
                    99.0: metrics.LATENCY_P99_US.name, 99.9: metrics.LATENCY_P999_US.name,
                    100.0: metrics.LATENCY_MAX_US.name}  # fmt: skip
            pts = [(p, float(grp[c].median())) for p, c in cols.items() if grp[c].notna().any()]
            if pts:
                out[str(backend)] = pd.DataFrame(pts, columns=["percentile", "latency_us"])
                sources.add("median of per-repetition percentiles (raw histograms missing)")
    return out, "; ".join(sorted(sources))


def chart_latency_distribution(run: RunData) -> Figure | None:
    if run.trials.empty:
        return None
    trials, mode = rows_in_mode(run.trials, "latency_distribution", Mode.OPEN)
    caveat = ""
    if usable_latency_trials(trials).empty and not usable_trials(trials).empty:
        # Every trial's tail weighs the client's own send lag: draw it, and say so.
        trials = usable_trials(trials)
        caveat = "\nCAUTION: the load generator's send lag is a material part of p99 in every trial"
    else:
        trials = usable_latency_trials(trials)
    if trials.empty:
        return None
    per_backend = [set(g["idle_connections"].dropna()) for _, g in trials.groupby("backend")]
    shared = set.intersection(*per_backend) if per_backend else set()
    if not shared:
        return None
    n = max(shared)
    dist, source = latency_distribution(run, trials[trials["idle_connections"] == n])
    if not dist:
        return None
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    for backend in order(list(dist)):
        d = dist[backend]
        x = 1.0 / (1.0 - d["percentile"].clip(upper=99.999) / 100.0)
        # How many samples the percentiles rest on (p99.99 of 10,000 is the largest value).
        count = f" ({int(d['samples'].iloc[0]):,} samples)" if "samples" in d.columns else ""
        ax.plot(x, d["latency_us"], ms=4, lw=1.6, label=f"{backend}{count}",
                **series_style(backend))  # fmt: skip
    ticks = [50.0, 90.0, 99.0, 99.9, 99.99]
    ax.set_xscale("log")
    plain_log_y(ax)
    ax.set_xticks(
        [1 / (1 - p / 100) for p in (*ticks, 99.999)], [*(f"p{p:g}" for p in ticks), "max"]
    )
    ax.minorticks_off()
    ax.set_xlabel("percentile (last point: max)")
    ax.set_ylabel("latency (µs), log scale, corrected for coordinated omission")
    ax.grid(True, which="both", alpha=0.25)
    flagged_legend(ax, False)
    active = "/".join(str(int(a)) for a in sorted(trials["active_connections"].dropna().unique()))
    ax.set_title(
        f"Latency distribution at {int(n)} idle + {active} active connections "
        f"(largest count all backends share, {mode} loop)\nfrom {source}{caveat}",
        fontsize=9.5,
    )
    fig.tight_layout()
    return fig
