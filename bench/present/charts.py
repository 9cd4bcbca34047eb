"""Charts of one run, drawn from its folder alone (matplotlib, Agg), as PNG and SVG.

Every chart: units on the axes, the median of the repetitions with min-max error
bars, each backend's look as declared with it (``servers.registry.Backend.look``:
one colour per backend, one marker per mechanism, one line style per family), cells
whose every repetition was flagged drawn hollow and grey (they are left out of the
verdict), select's FD_SETSIZE (1024) marked, and a title that says what the data
shows, worded from the verdict's own fits (never a fixed sentence, never a fit of
its own). Each chart reads the rows of the scenarios that declare it
(``Scenario.charts``); the catalogue (``bench.present.chart_catalogue``) declares
each one and draws them all.

The fits come from the typed verdict (``bench.store.verdict_file``):
``bench.present.chart_catalogue.draw_all`` is given the one ``bench run`` /
``bench report`` just computed, or reads the run folder's verdict.json, or, for
a run with none, computes the verdict once; the charts never fit anything the
verdict holds. What they do compute is what they plot: medians and min-max of
the repetitions per cell.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bench import metrics
from bench.analyse.flags import send_lag_material
from bench.analyse.rules import CLAIM3_CPU_LABEL, CLAIM3_MICRO_LABEL, CLAIM3_WAIT_LABEL
from bench.analyse.stats import micro_standard_error_us
from bench.present.chart_style import (
    any_flagged,
    colour,
    families_of,
    flagged_legend,
    linestyle,
    mark_fd_setsize,
    mechanism_backends,
    micro_summary,
    order,
    plain_log_y,
    plot_series,
    rows_for,
    rows_in_mode,
    series_style,
    shared_title,
    summary,
    trend_words,
    verdict_of,
)

# The notebooks draw each chart from this module, this one included.
from bench.present.latency_distribution import chart_latency_distribution  # noqa: F401
from bench.present.latency_merge import cell_percentiles
from bench.store.results import RunData
from bench.store.verdict_file import Verdict
from bench.tables import Mode, TrialStatus
from bench.tables.micro import PROCESS
from servers.limits import FD_SETSIZE

# ---------------------------------------------------------------- the charts


def chart_wait_cost(run: RunData, verdict: Verdict | None = None) -> Figure | None:
    """Cost of one wait call vs registered descriptors: micro (left) and in-server (right)."""
    micro = run.micro[run.micro["ready"] == "one"] if not run.micro.empty else run.micro
    trials, mode = rows_in_mode(run.trials, "wait_cost_vs_descriptors", Mode.CLOSED)
    trials = trials.assign(registered=trials["idle_connections"] + trials["active_connections"])
    server = summary(trials, metrics.SERVER_WAIT_US_PER_CALL.name, "registered")
    if micro.empty and server.empty:
        return None
    panels = int(not micro.empty) + int(not server.empty)
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels + 0.5, 5.2), squeeze=False)
    axes = list(axes[0])
    words = []
    verdict = verdict_of(run, verdict)
    if not micro.empty:
        ax = axes.pop(0)
        per_process = PROCESS in micro.columns and bool(micro[PROCESS].notna().any())
        if per_process:
            plot_series(ax, micro_summary(micro), "n_registered", log_x=True)
        else:  # a run from before the processes: one median per count, its standard error
            for mech in order(micro["mechanism"]):
                m = micro[micro["mechanism"] == mech].sort_values("n_registered")
                se = micro_standard_error_us(m)
                yerr = np.vstack([np.minimum(se, m["median_us"] * 0.999), se])
                ax.errorbar(
                    m["n_registered"], m["median_us"], yerr=yerr, ms=5, capsize=3, lw=1.6,
                    label=mech, **series_style(mech),
                )  # fmt: skip
        # The micro benchmarks time Python's select module: say so when other families are drawn.
        several = not server.empty and len(families_of(list(server["backend"]))) > 1
        where = "in-process (Python family)" if several else "in-process"
        micro_words = trend_words(verdict.growth_fits(CLAIM3_MICRO_LABEL))
        words.append(f"{where}: " + (micro_words or "no fit in the verdict"))
        all_m = micro_summary(run.micro[run.micro["ready"] == "all"])
        for mech in order(all_m["backend"]):
            m = all_m[all_m["backend"] == mech]
            ax.plot(m["n_registered"], m["median"], color=colour(mech), lw=1, ls="--", alpha=0.6,
                    label=f"{mech}, all ready")  # fmt: skip
        ax.set_xscale("log")
        plain_log_y(ax)
        mark_fd_setsize(ax)
        ax.legend(fontsize=8, loc="upper left", framealpha=0.85)
        spread = (
            f"median and min-max of {micro[PROCESS].nunique()} processes"
            if per_process
            else "median and its standard error"
        )
        ax.set_title(f"One wait call in-process (timeout 0), {spread}", fontsize=9.5)
        ax.set_xlabel("registered descriptors (socketpairs), log scale")
        ax.set_ylabel("time per wait call (µs), log scale; solid: one ready")
        ax.grid(True, which="both", alpha=0.25)
    if not server.empty:
        ax = axes.pop(0)
        plot_series(ax, server, "registered", log_x=True)
        fits = verdict.growth_fits(CLAIM3_WAIT_LABEL)
        if fits:
            words.append("in-server: " + trend_words(fits))
        ax.set_xscale("log")
        plain_log_y(ax)
        mark_fd_setsize(ax)
        flagged_legend(ax, any_flagged(server))
        ax.set_title(
            f"Inside the server (idle-scaling, {mode} loop), median and min-max", fontsize=9.5
        )
        ax.set_xlabel("connections held by the server (idle + active), log scale")
        ax.set_ylabel("server CPU time inside one wait call (µs), log")
        ax.grid(True, which="both", alpha=0.25)
    shared_title(fig, "Cost of one wait call as descriptors grow", "\n".join(words))
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


def _per_idle_chart(
    run: RunData, chart: str, metric: str, prefer_mode: str, ylabel: str, title: str,
    log_y: bool, fits: dict,
) -> Figure | None:  # fmt: skip
    trials, mode = rows_in_mode(run.trials, chart, prefer_mode)
    summ = summary(trials, metric, "idle_connections")
    if summ.empty:
        return None
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    plot_series(ax, summ, "idle_connections")
    if log_y:
        plain_log_y(ax)
    mark_fd_setsize(ax)
    ax.set_xlabel("idle connections held by the server")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.25)
    flagged_legend(ax, any_flagged(summ))
    active = "/".join(str(int(a)) for a in sorted(trials["active_connections"].dropna().unique()))
    rate = trials["rate_rps_requested"].dropna().unique()
    rate_txt = f" at {rate[0]:.0f} req/s" if mode == Mode.OPEN and len(rate) == 1 else ""
    sub = (
        f"idle-scaling, {active} active connections, {mode} loop{rate_txt}; "
        "median and min-max of repetitions"
    )
    words = trend_words(fits) or "no fit in the verdict"
    # Several families: one line of trend words each, under the title.
    head = f"{title}\n{words}" if "\n" in words else f"{title}: {words}"
    ax.set_title(f"{head}\n{sub}", fontsize=10)
    fig.tight_layout()
    return fig


def chart_cpu_per_request(run: RunData, verdict: Verdict | None = None) -> Figure | None:
    fits = verdict_of(run, verdict).growth_fits(CLAIM3_CPU_LABEL)
    return _per_idle_chart(
        run, "cpu_per_request_vs_idle", metrics.SERVER_CPU_US_PER_REQ.name, Mode.OPEN,
        "server CPU per request (µs, user + system)",
        "Server CPU per request vs idle connections", log_y=False, fits=fits,
    )  # fmt: skip


def latency_rows(run: RunData) -> tuple[pd.DataFrame, str]:
    """The trials the latency chart reads, and its loop mode. Percentiles the load
    generator's own lateness weighs on are not the server's: those count as flagged
    (drawn hollow and grey, left out of the merged histograms)."""
    trials, mode = rows_in_mode(run.trials, "latency_vs_idle", Mode.OPEN)
    if trials.empty:
        return trials, mode
    return trials.assign(flagged=trials["flagged"].fillna(False) | send_lag_material(trials)), mode


def chart_latency(run: RunData) -> Figure | None:
    trials, mode = latency_rows(run)
    if trials.empty:
        return None
    p50 = summary(trials, metrics.LATENCY_P50_US.name, "idle_connections")
    p99 = summary(trials, metrics.LATENCY_P99_US.name, "idle_connections")
    if p50.empty and p99.empty:
        return None
    merged = merged_cells(run, trials)
    p50, p99 = _merged_points(p50, merged, 50.0), _merged_points(p99, merged, 99.0)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for ax, summ, name in ((axes[0], p50, "p50"), (axes[1], p99, "p99")):
        if summ.empty:
            continue
        plot_series(ax, summ, "idle_connections")
        plain_log_y(ax)
        mark_fd_setsize(ax)
        ax.set_xlabel("idle connections held by the server")
        merged_any = "point" in summ.columns and summ["point"].notna().any()
        point = f"{name} of the repetitions' merged histograms" if merged_any else "median"
        ax.set_title(
            f"{name} latency (corrected for coordinated omission)\n"
            f"point: {point}; bar: per-trial range",
            fontsize=9.5,
        )
        ax.grid(True, which="both", alpha=0.25)
        flagged_legend(ax, any_flagged(summ))
    axes[0].set_ylabel("latency (µs), log scale")
    thin = _thin_tail_note(trials)
    if thin:
        axes[1].set_title(f"p99 latency (corrected)\n{thin}", fontsize=9, color="#b35900")
    worst = ""
    if not p99.empty:
        top = p99.loc[p99["median"].idxmax()]
        worst = (
            f"highest p99: {top['backend']} at {int(top['idle_connections'])} idle "
            f"({top['median']:.0f} µs)"
        )
    shared_title(fig, f"Request latency vs idle connections ({mode} loop)", worst)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


MERGE_KEYS = ("backend", "idle_connections")


def merged_cells(run: RunData, trials: pd.DataFrame) -> pd.DataFrame:
    """p50 and p99 per cell from its usable repetitions' merged HdrHistograms."""
    ok = trials["status"] == TrialStatus.OK
    usable = trials[ok & ~trials["flagged"].fillna(False).astype(bool)]
    return cell_percentiles(run, usable, MERGE_KEYS, (50.0, 99.0))


def _merged_points(summ: pd.DataFrame, merged: pd.DataFrame, p: float) -> pd.DataFrame:
    """A cell's point is its merged percentile where its histograms are in the run folder
    (the bars stay the per-trial range); elsewhere the median of per-trial values."""
    if summ.empty or merged.empty:
        return summ
    col = f"p{p:g}_us"
    out = summ.merge(merged[[*MERGE_KEYS, col, "samples", "trials_merged"]], on=list(MERGE_KEYS),
                     how="left")  # fmt: skip
    has = out[col].notna() & ~out["flagged_only"].astype(bool)
    out.loc[has, "median"] = out.loc[has, col]
    out["point"] = None
    out.loc[has, "point"] = [
        f"p{p:g} of {int(t)} merged histograms ({int(n)} samples)"
        for t, n in zip(out.loc[has, "trials_merged"], out.loc[has, "samples"], strict=True)
    ]
    # A merged percentile lies within the per-trial ones; HdrHistogram's rounding may not.
    out["min"] = out[["min", "median"]].min(axis=1)
    out["max"] = out[["max", "median"]].max(axis=1)
    return out.drop(columns=[col, "samples", "trials_merged"])


# A p99 read from fewer samples than this is the 20th largest value or fewer
# (issue 9: the quick preset's open-loop cells had 450, p99 = the 5th largest).
MIN_SAMPLES_FOR_P99 = 2000


def _thin_tail_note(trials: pd.DataFrame) -> str:
    """A warning when the p99 shown rests on too few samples, else ''."""
    if metrics.LATENCY_SAMPLES.name not in trials.columns or trials.empty:
        return ""
    samples = pd.to_numeric(trials[metrics.LATENCY_SAMPLES.name], errors="coerce").dropna()
    if samples.empty or samples.min() >= MIN_SAMPLES_FOR_P99:
        return ""
    n = int(samples.min())
    return (
        f"p99 rests on as few as {n} samples per trial (about the {max(1, n // 100)} "
        f"largest), under {MIN_SAMPLES_FOR_P99}: read it as a rough tail; hollow grey: "
        "flagged, or the client's send lag was a material part of p99"
    )


def chart_throughput_active(run: RunData, verdict: Verdict | None = None) -> Figure | None:
    if run.trials.empty:
        return None
    rows = rows_for(run.trials, "throughput_vs_active")
    summ = summary(rows, metrics.THROUGHPUT_RPS.name, "active_connections")
    if summ.empty:
        return None
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    plot_series(ax, summ, "active_connections", log_x=True)
    ax.set_xscale("log")
    mark_fd_setsize(ax)
    ax.set_xlabel("active connections (every connection sends), log scale")
    ax.set_ylabel("throughput (requests/s)")
    ax.set_ylim(bottom=0)
    ax.grid(True, which="both", alpha=0.25)
    flagged_legend(ax, any_flagged(summ))
    ratio_txt = "\n".join(all_active_words(verdict_of(run, verdict)))
    ax.set_title(
        f"Throughput when every connection is active (closed loop)\n{ratio_txt}", fontsize=10
    )
    fig.tight_layout()
    return fig


def _x(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.2f}"


def all_active_words(verdict: Verdict) -> list[str]:
    """Claim 2's all-active decisions at each family's largest judged count, from the verdict
    (its ratio is CPU per request, the claim's metric; the chart draws throughput)."""
    claim = verdict.claim("2")
    lines = []
    for family in claim.families.values() if claim is not None else ():
        regimes = family.evidence.regimes or []
        cells = [c for r in regimes if r.regime == "all-active" for c in r.comparisons if c.judged]
        if not cells:
            continue
        top = max(c.connections or 0 for c in cells)
        bits = [
            f"{family.roles.get('subject')} vs {c.backend} at {top}: CPU/request "
            f"{_x(c.decision.ratio)}x [{_x(c.decision.ci_low)}, {_x(c.decision.ci_high)}] "
            f"{c.class_}"
            for c in cells
            if c.connections == top and c.decision is not None
        ]
        if bits:
            lines.append("; ".join(bits))
    return lines


def chart_fd_limit(run: RunData) -> Figure | None:
    if run.trials.empty:
        return None
    rows = rows_for(run.trials, "fd_limit_connections")
    if rows.empty:
        return None
    backends = order(rows["backend"])
    served = [
        rows[rows["backend"] == b][metrics.CONNECTIONS_SERVED.name].astype(float).median()
        for b in backends
    ]
    requested = [
        rows[rows["backend"] == b]["connections_requested"].astype(float).median() for b in backends
    ]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    xs = np.arange(len(backends))
    ax.bar(xs - 0.2, requested, width=0.4, color="#dddddd", edgecolor="#888888", label="requested")
    bars = ax.bar(
        xs + 0.2, served, width=0.4, color=[colour(b) for b in backends], label="served",
        edgecolor="#333333", linewidth=1.0,
    )  # fmt: skip
    for bar, backend in zip(bars, backends, strict=True):
        bar.set_linestyle(linestyle(backend))  # the family's line style, as on every chart
    for x, s in zip(xs, served, strict=True):
        if math.isfinite(s):
            ax.text(x + 0.2, s, f"{s:.0f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(FD_SETSIZE, color=colour("select"), ls=":", lw=1.3, label="FD_SETSIZE 1024")
    ax.set_xticks(xs, backends)
    ax.set_ylabel("connections (median of repetitions)")
    seen = []
    for b in mechanism_backends(backends, "select"):
        obs = rows[rows["backend"] == b][metrics.CLIENT_OBSERVATION.name].dropna()
        obs = obs[obs.astype(str) != ""]
        if not obs.empty:
            seen.append(f"{b}'s clients saw: {obs.iloc[0]}")
    ax.set_title(
        "Connections served when pushed past FD_SETSIZE (fd-limit)"
        + "".join(f"\n{line}" for line in seen),
        fontsize=9.5,
    )
    ax.legend(fontsize=8, loc="lower right", framealpha=0.95)
    fig.tight_layout()
    return fig
