"""idle-steps: each server process's wait CPU per call at every idle count, one line per process.

The lines are the evidence claim 3's in-server metric is judged on for each
family's epoll: a process is one line, so a reader sees that the spread between
processes (the lines' heights) is not the growth inside one (their slopes). The
title quotes the verdict's own fit and class; nothing is refitted here.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from bench import metrics
from bench.analyse.flatness import change_words, pct
from bench.analyse.idle_steps import step_windows
from bench.analyse.rules import CLAIM3_WAIT_LABEL
from bench.present.chart_style import colour, order, shared_title, verdict_of
from bench.store.results import RunData
from bench.store.verdict_file import Verdict

METRIC = metrics.SERVER_WAIT_US_PER_CALL.name


def chart_idle_steps(run: RunData, verdict: Verdict | None = None) -> Figure | None:
    windows = step_windows(run.trials)
    windows = windows[windows[METRIC].notna()]
    if windows.empty:
        return None
    fits = verdict_of(run, verdict).growth_fits(CLAIM3_WAIT_LABEL)
    backends = order(sorted(windows["backend"].unique()))
    fig, axes = plt.subplots(1, len(backends), figsize=(5.2 * len(backends), 4.6), squeeze=False)
    words = []
    for ax, backend in zip(axes[0], backends, strict=True):
        mine = windows[windows["backend"] == backend]
        for _, proc in mine.groupby("process"):
            proc = proc.sort_values("idle_connections")
            ax.plot(proc["idle_connections"], proc[METRIC], color=colour(backend), lw=1.2,
                    marker="o", ms=4, alpha=0.8)  # fmt: skip
        fit = fits.get(backend)
        if fit is not None and fit.projected_rel_increase is not None:
            lo, hi = fit.projected_rel_increase_ci_low, fit.projected_rel_increase_ci_high
            words.append(
                f"{backend}: {change_words(fit.projected_rel_increase)} "
                f"[{pct(lo)}, {pct(hi)}] over the counts ({fit.class_})"
            )
        ax.set_title(f"{backend}: {mine['process'].nunique()} server processes", fontsize=10)
        ax.set_xlabel("idle connections held (the same process at each)")
        ax.set_ylabel("server CPU time inside one wait call (µs)")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.25)
    shared_title(
        fig,
        "Inside one server process as its idle set changes (idle-steps, closed loop)",
        "; ".join(words) or "no fit in the verdict",
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig
