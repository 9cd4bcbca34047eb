"""Charts of one run, drawn from its folder alone (matplotlib, Agg), as PNG and SVG.

Every chart: units on the axes, the median of the repetitions with min-max error
bars, one colour per backend across all charts, cells whose every repetition
was flagged drawn hollow and grey (they are left out of the verdict), select's
FD_SETSIZE (1024) marked, and a title that says what the data shows, worded
from the same fits the verdict uses (never a fixed sentence).
"""

from __future__ import annotations

import base64
import json
import math
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from bench.store import schema
from bench.analyse.stats import (
    bootstrap_slope,
    micro_standard_error_us,
    parametric_slope,
    summarise_cells,
    usable_trials,
)
from bench.store.results import RunData

BACKEND_COLOURS = {
    "select": "#d62728",
    "poll": "#ff7f0e",
    "epoll": "#1f77b4",
    "epoll-et": "#17becf",
    "asyncio": "#2ca02c",
    "uvloop": "#9467bd",
    "threads": "#8c564b",
}
BACKEND_ORDER = tuple(BACKEND_COLOURS)
BACKEND_MARKERS = {"select": "s", "poll": "^", "epoll": "o", "epoll-et": "D"}
FLAGGED_COLOUR = "#9a9a9a"
DPI = 110


def colour(backend: str) -> str:
    return BACKEND_COLOURS.get(backend, "#555555")


def _order(backends: Sequence[str]) -> list[str]:
    rank = {b: i for i, b in enumerate(BACKEND_ORDER)}
    return sorted({str(b) for b in backends}, key=lambda b: (rank.get(b, 99), b))


def _save(fig: Figure, charts_dir: Path, name: str) -> list[Path]:
    charts_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in ("png", "svg"):
        path = charts_dir / f"{name}.{ext}"
        fig.savefig(
            path, dpi=DPI, bbox_inches="tight", metadata=None if ext == "png" else {"Date": None}
        )
        out.append(path)
    plt.close(fig)
    return out


def _summary(trials: pd.DataFrame, metric: str, x_col: str) -> pd.DataFrame:
    """Per backend and x: median/min/max over repetitions (flagged-only cells kept, marked)."""
    rows = trials[trials[metric].notna()]
    if rows.empty:
        return pd.DataFrame()
    return summarise_cells(rows, metric, keys=("backend", x_col))


def _plot_series(ax: Axes, summ: pd.DataFrame, x_col: str, log_x: bool = False) -> None:
    """Median with min-max bars per backend; flagged-only cells hollow and grey.

    Backends are dodged sideways a little so that error bars at the same x
    stay readable; the dodge is a small factor on a log axis, a small
    fraction of the range on a linear one.
    """
    backends = _order(summ["backend"])
    xs = summ[x_col].astype(float)
    span = float(xs.max() - xs.min()) if len(xs) else 0.0
    for i, backend in enumerate(backends):
        shift = i - (len(backends) - 1) / 2

        def dodge(x: pd.Series, shift: float = shift) -> pd.Series:
            return x * (1.0 + 0.04 * shift) if log_x else x + 0.008 * span * shift

        s = summ[summ["backend"] == backend].sort_values(x_col)
        good = s[~s["flagged_only"].astype(bool)]
        marker = BACKEND_MARKERS.get(backend, "o")
        if not good.empty:
            yerr = np.vstack([good["median"] - good["min"], good["max"] - good["median"]])
            ax.errorbar(
                dodge(good[x_col].astype(float)), good["median"], yerr=yerr, color=colour(backend),
                marker=marker, ms=5, capsize=3, lw=1.6, label=backend,
            )  # fmt: skip
        bad = s[s["flagged_only"].astype(bool)]
        if not bad.empty:
            ax.plot(
                dodge(bad[x_col].astype(float)), bad["median"], linestyle="none", marker=marker,
                ms=7, mfc="none", mec=FLAGGED_COLOUR, mew=1.5,
            )  # fmt: skip


def _flagged_legend(ax: Axes, any_flagged: bool) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if any_flagged:
        handles.append(
            plt.Line2D(
                [], [], linestyle="none", marker="o", mfc="none", mec=FLAGGED_COLOUR, mew=1.5
            )
        )
        labels.append("flagged cell (not in verdict)")
    if handles:
        ax.legend(handles, labels, fontsize=8, loc="best", framealpha=0.85)


def _plain_log_y(ax: Axes) -> None:
    """Log y axis labelled 50, 100, 200, 500 ... rather than 6x10^2."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _mark_fd_setsize(ax: Axes, y_text_frac: float = 0.96) -> None:
    """Dotted line at 1024 in select's colour; the note goes on whichever side has room."""
    ax.axvline(schema.FD_SETSIZE, color=colour("select"), linestyle=":", lw=1.3)
    x_frac = ax.transAxes.inverted().transform(ax.transData.transform((schema.FD_SETSIZE, 1)))[0]
    right = x_frac < 0.75
    ax.annotate(
        "FD_SETSIZE 1024:\nselect's limit",
        xy=(schema.FD_SETSIZE, y_text_frac), xycoords=("data", "axes fraction"),
        xytext=(4 if right else -4, 0), textcoords="offset points",
        ha="left" if right else "right", va="top", fontsize=8, color=colour("select"),
    )  # fmt: skip


def _trend_words(fits: dict[str, Any]) -> str:
    """'select and poll grow, epoll stays flat' from verdict-style fits."""
    from bench.analyse.verdict import RELATIVE_RULE_MARK, change_words, classify_fits

    grow, flat, nearly_flat, unclear, few = [], [], [], [], []
    classes = classify_fits(fits, need_reps=False)
    for backend in _order(list(fits)):
        cls, reason = classes[backend]
        pct = fits[backend].rel_increase
        txt = f"{backend} ({change_words(pct)})" if math.isfinite(pct) else backend
        if cls == "flat" and RELATIVE_RULE_MARK in reason:
            nearly_flat.append(txt)  # flat only next to select's and poll's slopes
            continue
        {"growing": grow, "flat": flat, "insufficient": few}.get(cls, unclear).append(txt)
    if few and not (grow or flat or unclear):
        return "too few descriptor counts to show a trend"
    parts = []
    if grow:
        parts.append(f"{', '.join(grow)} grow{'s' if len(grow) == 1 else ''}")
    if flat:
        parts.append(f"{', '.join(flat)} stay{'s' if len(flat) == 1 else ''} flat")
    if nearly_flat:
        parts.append(f"{', '.join(nearly_flat)} nearly flat (slope under 5% of theirs)")
    if unclear:
        parts.append(f"{', '.join(unclear)} unclear")
    return "; ".join(parts) + (" (change over the measured range)" if parts else "")


def _idle_usable(trials: pd.DataFrame, prefer_mode: str) -> tuple[pd.DataFrame, str]:
    rows = trials[(trials["scenario"] == "idle-scaling") & (trials["status"] == "ok")]
    modes = set(rows["mode"].dropna())
    mode = prefer_mode if prefer_mode in modes else (sorted(modes)[0] if modes else prefer_mode)
    return rows[rows["mode"] == mode], mode


def _any_flagged(summ: pd.DataFrame) -> bool:
    return bool(not summ.empty and summ["flagged_only"].astype(bool).any())


def _shared_title(fig: Figure, title: str, subtitle: str) -> None:
    fig.suptitle(title, fontsize=11, fontweight="bold", y=1.0)
    fig.text(0.5, 0.96, subtitle, ha="center", va="top", fontsize=8.5, color="#444444")


# ---------------------------------------------------------------- the charts


def chart_wait_cost(run: RunData) -> Figure | None:
    """Cost of one wait call vs registered descriptors: micro (left) and in-server (right)."""
    micro = run.micro[run.micro["ready"] == "one"] if not run.micro.empty else run.micro
    trials, mode = _idle_usable(run.trials, "closed") if not run.trials.empty else (run.trials, "")
    trials = trials.assign(registered=trials["idle_connections"] + trials["active_connections"])
    server = _summary(trials, "server_wait_us_per_call", "registered")
    if micro.empty and server.empty:
        return None
    panels = int(not micro.empty) + int(not server.empty)
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels + 0.5, 5.2), squeeze=False)
    axes = list(axes[0])
    words = []
    if not micro.empty:
        ax = axes.pop(0)
        fits = {}
        for mech in _order(micro["mechanism"]):
            m = micro[micro["mechanism"] == mech].sort_values("n_registered")
            se = micro_standard_error_us(m)
            yerr = np.vstack([np.minimum(se, m["median_us"] * 0.999), se])
            ax.errorbar(
                m["n_registered"], m["median_us"], yerr=yerr, color=colour(mech),
                marker=BACKEND_MARKERS.get(mech, "o"), ms=5, capsize=3, lw=1.6, label=mech,
            )  # fmt: skip
            fits[mech] = parametric_slope(m["n_registered"], m["median_us"], se)
        words.append("in-process: " + _trend_words(fits))
        all_m = run.micro[run.micro["ready"] == "all"]
        for mech in _order(all_m["mechanism"]):
            m = all_m[all_m["mechanism"] == mech].sort_values("n_registered")
            ax.plot(m["n_registered"], m["median_us"], color=colour(mech), lw=1, ls="--", alpha=0.6,
                    label=f"{mech}, all ready")  # fmt: skip
        ax.set_xscale("log")
        _plain_log_y(ax)
        _mark_fd_setsize(ax)
        ax.legend(fontsize=8, loc="upper left", framealpha=0.85)
        ax.set_title("One wait call in-process (pytest-benchmark, timeout 0)", fontsize=9.5)
        ax.set_xlabel("registered descriptors (socketpairs), log scale")
        ax.set_ylabel("time per wait call (µs), log scale; solid: one ready")
        ax.grid(True, which="both", alpha=0.25)
    if not server.empty:
        ax = axes.pop(0)
        _plot_series(ax, server, "registered", log_x=True)
        usable = usable_trials(trials)
        fits = {
            str(b): bootstrap_slope(
                g["registered"].astype(float), g["server_wait_us_per_call"].astype(float)
            )
            for b, g in usable[usable["server_wait_us_per_call"].notna()].groupby("backend")
        }
        if fits:
            words.append("in-server: " + _trend_words(fits))
        ax.set_xscale("log")
        _plain_log_y(ax)
        _mark_fd_setsize(ax)
        _flagged_legend(ax, _any_flagged(server))
        ax.set_title(
            f"Inside the server (idle-scaling, {mode} loop), median and min-max", fontsize=9.5
        )
        ax.set_xlabel("connections held by the server (idle + active), log scale")
        ax.set_ylabel("server CPU time inside one wait call (µs), log")
        ax.grid(True, which="both", alpha=0.25)
    _shared_title(fig, "Cost of one wait call as descriptors grow", "\n".join(words))
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


def _per_idle_chart(
    run: RunData, metric: str, prefer_mode: str, ylabel: str, title: str, log_y: bool
) -> Figure | None:
    trials, mode = (
        _idle_usable(run.trials, prefer_mode) if not run.trials.empty else (run.trials, "")
    )
    summ = _summary(trials, metric, "idle_connections")
    if summ.empty:
        return None
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    _plot_series(ax, summ, "idle_connections")
    usable = usable_trials(trials)
    fits = {
        str(b): bootstrap_slope(g["idle_connections"].astype(float), g[metric].astype(float))
        for b, g in usable[usable[metric].notna()].groupby("backend")
    }
    if log_y:
        _plain_log_y(ax)
    _mark_fd_setsize(ax)
    ax.set_xlabel("idle connections held by the server")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.25)
    _flagged_legend(ax, _any_flagged(summ))
    active = "/".join(str(int(a)) for a in sorted(trials["active_connections"].dropna().unique()))
    rate = trials["rate_rps_requested"].dropna().unique()
    rate_txt = f" at {rate[0]:.0f} req/s" if mode == "open" and len(rate) == 1 else ""
    sub = (
        f"idle-scaling, {active} active connections, {mode} loop{rate_txt}; "
        "median and min-max of repetitions"
    )
    ax.set_title(f"{title}: {_trend_words(fits)}\n{sub}", fontsize=10)
    fig.tight_layout()
    return fig


def chart_cpu_per_request(run: RunData) -> Figure | None:
    return _per_idle_chart(
        run, "server_cpu_us_per_req", "open", "server CPU per request (µs, user + system)",
        "Server CPU per request vs idle connections", log_y=False,
    )  # fmt: skip


def chart_latency(run: RunData) -> Figure | None:
    trials, mode = _idle_usable(run.trials, "open") if not run.trials.empty else (run.trials, "")
    p50 = _summary(trials, "latency_p50_us", "idle_connections")
    p99 = _summary(trials, "latency_p99_us", "idle_connections")
    if p50.empty and p99.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for ax, summ, name in ((axes[0], p50, "p50"), (axes[1], p99, "p99")):
        if summ.empty:
            continue
        _plot_series(ax, summ, "idle_connections")
        _plain_log_y(ax)
        _mark_fd_setsize(ax)
        ax.set_xlabel("idle connections held by the server")
        ax.set_title(f"{name} latency (corrected for coordinated omission)", fontsize=9.5)
        ax.grid(True, which="both", alpha=0.25)
        _flagged_legend(ax, _any_flagged(summ))
    axes[0].set_ylabel("latency (µs), log scale")
    worst = ""
    if not p99.empty:
        top = p99.loc[p99["median"].idxmax()]
        worst = (
            f"highest p99: {top['backend']} at {int(top['idle_connections'])} idle "
            f"({top['median']:.0f} µs)"
        )
    _shared_title(fig, f"Request latency vs idle connections ({mode} loop)", worst)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


def chart_throughput_active(run: RunData) -> Figure | None:
    if run.trials.empty:
        return None
    rows = run.trials[(run.trials["scenario"] == "active-scaling") & (run.trials["status"] == "ok")]
    summ = _summary(rows, "throughput_rps", "active_connections")
    if summ.empty:
        return None
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    _plot_series(ax, summ, "active_connections", log_x=True)
    ax.set_xscale("log")
    _mark_fd_setsize(ax)
    ax.set_xlabel("active connections (every connection sends), log scale")
    ax.set_ylabel("throughput (requests/s)")
    ax.set_ylim(bottom=0)
    ax.grid(True, which="both", alpha=0.25)
    _flagged_legend(ax, _any_flagged(summ))
    good = summ[~summ["flagged_only"].astype(bool)]
    ratio_txt = ""
    ep = good[good["backend"] == "epoll"].set_index("active_connections")["median"]
    ratios = []
    for other in ("select", "poll"):
        ot = good[good["backend"] == other].set_index("active_connections")["median"]
        shared = sorted(set(ep.index) & set(ot.index))
        if shared:
            n = shared[-1]
            ratios.append(f"epoll/{other} = {ep[n] / ot[n]:.2f}x at {int(n)}")
    ratio_txt = "; ".join(ratios)
    ax.set_title(
        f"Throughput when every connection is active (closed loop)\n{ratio_txt}", fontsize=10
    )
    fig.tight_layout()
    return fig


def _find_histogram(doc: Any) -> str | None:
    """The corrected HdrHistogram blob in a raw load generator document, at any depth."""
    if isinstance(doc, dict):
        for key in schema.RAW_HISTOGRAM_KEYS:
            if isinstance(doc.get(key), str) and doc[key]:
                return doc[key]
        for value in doc.values():
            found = _find_histogram(value)
            if found:
                return found
    elif isinstance(doc, list):
        for value in doc:
            found = _find_histogram(value)
            if found:
                return found
    return None


def _decode_histogram(blob: str) -> Any:
    from hdrh.histogram import HdrHistogram

    return HdrHistogram.decode(blob)


PERCENTILE_GRID = (50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99)


def latency_distribution(run: RunData, rows: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], str]:
    """Per backend: percentile -> latency (µs), from merged raw histograms, else columns."""
    out: dict[str, pd.DataFrame] = {}
    sources = set()
    for backend, grp in rows.groupby("backend"):
        merged = None
        for rel in grp["raw_file"].dropna():
            path = run.path / str(rel)
            try:
                blob = _find_histogram(json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError):
                blob = None
            if not blob:
                continue
            try:
                hist = _decode_histogram(blob)
            except (ValueError, TypeError, zlib.error, base64.binascii.Error):  # type: ignore[attr-defined]
                continue
            if merged is None:
                merged = hist
            else:
                merged.add(hist)
        if merged is not None and merged.get_total_count() > 0:
            unit = schema.RAW_HISTOGRAM_UNIT_US_PER_VALUE
            pts = [(p, merged.get_value_at_percentile(p) * unit) for p in PERCENTILE_GRID]
            pts.append((100.0, merged.get_max_value() * unit))
            out[str(backend)] = pd.DataFrame(pts, columns=["percentile", "latency_us"])
            sources.add("merged HdrHistograms of all repetitions")
        else:
            cols = {50.0: "latency_p50_us", 90.0: "latency_p90_us", 99.0: "latency_p99_us",
                    99.9: "latency_p999_us", 100.0: "latency_max_us"}  # fmt: skip
            pts = [(p, float(grp[c].median())) for p, c in cols.items() if grp[c].notna().any()]
            if pts:
                out[str(backend)] = pd.DataFrame(pts, columns=["percentile", "latency_us"])
                sources.add("median of per-repetition percentiles (raw histograms missing)")
    return out, "; ".join(sorted(sources))


def chart_latency_distribution(run: RunData) -> Figure | None:
    if run.trials.empty:
        return None
    trials, mode = _idle_usable(run.trials, "open")
    trials = usable_trials(trials)
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
    for backend in _order(list(dist)):
        d = dist[backend]
        x = 1.0 / (1.0 - d["percentile"].clip(upper=99.999) / 100.0)
        ax.plot(x, d["latency_us"], color=colour(backend), marker=BACKEND_MARKERS.get(backend, "o"),
                ms=4, lw=1.6, label=backend)  # fmt: skip
    ticks = [50.0, 90.0, 99.0, 99.9, 99.99]
    ax.set_xscale("log")
    _plain_log_y(ax)
    ax.set_xticks(
        [1 / (1 - p / 100) for p in (*ticks, 99.999)], [*(f"p{p:g}" for p in ticks), "max"]
    )
    ax.minorticks_off()
    ax.set_xlabel("percentile (last point: max)")
    ax.set_ylabel("latency (µs), log scale, corrected for coordinated omission")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8)
    active = "/".join(str(int(a)) for a in sorted(trials["active_connections"].dropna().unique()))
    ax.set_title(
        f"Latency distribution at {int(n)} idle + {active} active connections "
        f"(largest count all backends share, {mode} loop)\nfrom {source}",
        fontsize=9.5,
    )
    fig.tight_layout()
    return fig


def chart_fd_limit(run: RunData) -> Figure | None:
    if run.trials.empty:
        return None
    rows = run.trials[(run.trials["scenario"] == "fd-limit") & (run.trials["status"] == "ok")]
    if rows.empty:
        return None
    backends = _order(rows["backend"])
    served = [
        rows[rows["backend"] == b]["connections_served"].astype(float).median() for b in backends
    ]
    requested = [
        rows[rows["backend"] == b]["connections_requested"].astype(float).median() for b in backends
    ]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    xs = np.arange(len(backends))
    ax.bar(xs - 0.2, requested, width=0.4, color="#dddddd", edgecolor="#888888", label="requested")
    ax.bar(xs + 0.2, served, width=0.4, color=[colour(b) for b in backends], label="served")
    for x, s in zip(xs, served, strict=True):
        if math.isfinite(s):
            ax.text(x + 0.2, s, f"{s:.0f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(schema.FD_SETSIZE, color=colour("select"), ls=":", lw=1.3, label="FD_SETSIZE 1024")
    ax.set_xticks(xs, backends)
    ax.set_ylabel("connections (median of repetitions)")
    sel = rows[rows["backend"] == "select"]
    obs = sel["client_observation"].dropna()
    ax.set_title(
        "Connections served when pushed past FD_SETSIZE (fd-limit)"
        + (f"\nselect's clients saw: {obs.iloc[0]}" if not obs.empty else ""),
        fontsize=9.5,
    )
    ax.legend(fontsize=8, loc="lower right", framealpha=0.95)
    fig.tight_layout()
    return fig


CHARTS: dict[str, Callable[[RunData], Figure | None]] = {
    "wait_cost_vs_descriptors": chart_wait_cost,
    "cpu_per_request_vs_idle": chart_cpu_per_request,
    "latency_vs_idle": chart_latency,
    "throughput_vs_active": chart_throughput_active,
    "latency_distribution": chart_latency_distribution,
    "fd_limit_connections": chart_fd_limit,
}


def draw_all(run: RunData) -> list[Path]:
    """Draw every chart the run has data for into ``run.path/charts``; returns the files."""
    files: list[Path] = []
    for name, draw in CHARTS.items():
        fig = draw(run)
        if fig is not None:
            files.extend(_save(fig, run.charts_dir, name))
    return files
