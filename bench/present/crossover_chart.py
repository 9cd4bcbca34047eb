"""Chart: epoll's throughput ratio against the active share, with the crossover marked.

One panel per registered count (ready-fraction scenario) and metric
(throughput, epoll's / the other's; server CPU per request, the other's /
epoll's: both above 1.0 when epoll is ahead). Each comparison
(a family's epoll against its select or poll) is drawn in the other
backend's look (``servers.registry.Backend.look``: colour, marker, line style):
the geometric mean ratio at each share with its 95% paired interval, the
fitted curve ``ratio = A + B/share`` and, where the fitted ratio reaches 1.0
inside the measured shares, a vertical line at the crossover and a band over
its 95% interval. The points, curves and words come from the verdict's own
crossover section (``bench.analyse.crossover``, read back from the typed
verdict), never a fit of the chart's own or a fixed sentence.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from bench.analyse.crossover import METRICS, WORDS, fit_of, pct
from bench.present.chart_style import colour, marker, order, shared_title, verdict_of
from bench.present.chart_style import linestyle as family_linestyle
from bench.store.results import RunData
from bench.store.verdict_file import Verdict

RATIO_TICKS = (0.25, 0.5, 0.7, 0.8, 0.9, 1, 1.2, 1.5, 2, 3, 5, 7, 10, 20, 50, 100)


def _ratio_axis(ax: Axes) -> None:
    """Log y axis with ratio ticks (0.8, 1, 1.2, 1.5, 2...) whatever the range."""
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    low, high = min(low, 0.9), max(high, 1.1)
    ax.set_ylim(low, high)
    ax.set_yticks([t for t in RATIO_TICKS if low <= t <= high])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _panel(ax: Axes, comparisons: list[dict], registered: int, metric: str) -> list[str]:
    """Draw one registered count's comparisons; return their one-line summaries."""
    words = []
    rank = order([c["other"] for c in comparisons])
    for comp in sorted(comparisons, key=lambda c: rank.index(c["other"])):
        other, subject = comp["other"], comp["subject"]
        style = {"color": colour(other), "marker": marker(other)}
        pts = [p for p in comp["points"] if np.isfinite(p["ratio"])]
        if pts:
            x = np.array([p["share"] for p in pts])
            y = np.array([p["ratio"] for p in pts])
            lo = np.array([p["ci_low"] if np.isfinite(p["ci_low"]) else p["ratio"] for p in pts])
            hi = np.array([p["ci_high"] if np.isfinite(p["ci_high"]) else p["ratio"] for p in pts])
            yerr = np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])
            ax.errorbar(x, y, yerr=yerr, linestyle="none", ms=6, capsize=3, lw=1.4,
                        label=f"{subject} vs {other}", **style)  # fmt: skip
        fit = fit_of(comp)
        if fit.status == "insufficient":
            words.append(f"{subject}/{other}: too few shares to fit")
            continue
        grid = np.geomspace(fit.share_min, fit.share_max, 200)
        ax.plot(grid, fit.curve(grid), color=style["color"], lw=1.3, alpha=0.8,
                linestyle=family_linestyle(other))  # fmt: skip
        if fit.status == "crossover":
            ax.axvline(fit.estimate, color=style["color"], ls="--", lw=1.2)
            if np.isfinite(fit.ci_low):
                ax.axvspan(fit.ci_low, fit.ci_high, color=style["color"], alpha=0.12, lw=0)
            low = f"≤{pct(fit.ci_low)}" if fit.low_open else pct(fit.ci_low)
            high = f"≥{pct(fit.ci_high)}" if fit.high_open else pct(fit.ci_high)
            words.append(f"{subject}/{other} = 1 at {pct(fit.estimate)} active [{low}, {high}]")
        else:
            side = "ahead" if fit.direction == "above" else "behind"
            words.append(f"{subject} {side} of {other} throughout")
    ax.axhline(1.0, color="#444444", lw=1.0, ls=":")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{100 * v:g}%"))
    _ratio_axis(ax)
    ax.set_xlabel("active share of the registered connections (active / registered), log")
    what, ratio = WORDS[metric]
    ax.set_ylabel(f"{what} ratio, above 1: epoll ahead (log)")
    ratio = ratio.format(subject="epoll", other="other")
    ax.set_title(f"{registered:,} registered connections: {ratio}, 95% paired intervals",
                 fontsize=9)  # fmt: skip
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="best", framealpha=0.85)
    return words


def _nan_for_none(obj: Any) -> Any:
    """verdict.json writes an undefined estimate as null; the drawing wants NaN."""
    if isinstance(obj, dict):
        return {k: _nan_for_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_for_none(v) for v in obj]
    return float("nan") if obj is None else obj


def chart_crossover(run: RunData, verdict: Verdict | None = None) -> Figure | None:
    """Ratio vs active share, a row per metric and a column per registered count."""
    if run.trials.empty:
        return None
    result = _nan_for_none(verdict_of(run, verdict).crossover or {})
    panels: dict[tuple[str, int], list[dict]] = {}
    for fam in result.get("families") or []:
        for comp in fam["comparisons"]:
            panels.setdefault((comp["metric"], comp["registered"]), []).append(comp)
    if not panels:
        return None
    metrics = [m for m in METRICS if any(k[0] == m for k in panels)]
    counts = sorted({n for _, n in panels})
    fig, axes = plt.subplots(
        len(metrics), len(counts), figsize=(6.2 * len(counts) + 0.5, 4.8 * len(metrics) + 0.6),
        squeeze=False, sharex=True,
    )  # fmt: skip
    lines = []
    for row, metric in enumerate(metrics):
        for col, n in enumerate(counts):
            ax = axes[row][col]
            comps = panels.get((metric, n), [])
            if not comps:
                ax.set_axis_off()
                continue
            words = _panel(ax, comps, n, metric)
            lines.append(f"{n:,}, {WORDS[metric][0]}: " + "; ".join(words))
    shared_title(
        fig,
        "Where epoll's advantage ends: its advantage vs the active share (ready-fraction, "
        "closed loop)",
        "\n".join(lines),
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93 - 0.015 * max(0, len(lines) - 1)))
    return fig
