"""What every chart shares: a backend's colour, marker and line style, series, legends, axes.

Each backend's look is declared with it (``servers.registry.Backend.look``): one
colour per backend across all charts, one marker per readiness mechanism (a
backend and its twins in other families share it), one line style per family
(solid: the Python event loop, dashed: the C twins, dotted: external servers,
dash-dot: Python reference points), so one legend that names the backends tells
the families apart at a glance. The
median of the repetitions with min-max error bars, cells whose every
repetition was flagged drawn hollow and grey, select's FD_SETSIZE marked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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

from bench.analyse.stats import summarise_cells
from bench.measure import scenarios
from bench.present.chart_tips import add_tips, write_tips
from bench.store.results import RunData
from bench.store.verdict_file import Fit, Verdict, read_verdict
from bench.tables import TrialStatus
from servers import registry
from servers.limits import FD_SETSIZE

UNKNOWN_COLOUR = "#555555"
FLAGGED_COLOUR = "#9a9a9a"
DPI = 110


def _backend(name: str) -> registry.Backend | None:
    try:
        return registry.get(name)
    except registry.UnknownBackend:
        return None  # a run measured with a backend this checkout does not have


def family(backend: str) -> str:
    """The backend's family; an unknown backend counts with the headline (Python loop)."""
    found = _backend(backend)
    return found.family if found is not None else registry.FAMILY_PYTHON_LOOP


def look(backend: str) -> registry.Look:
    """The backend's declared look (``registry.Backend.look``); one this checkout does not
    know is grey, with the marker of the mechanism its name is and its family's line style."""
    found = _backend(backend)
    if found is not None:
        return found.look
    return registry.Look(
        colour=UNKNOWN_COLOUR,
        marker=registry.mechanism_marker(backend),
        linestyle=registry.family_linestyle(family(backend)),
        label=backend,
    )


def colour(backend: str) -> str:
    return look(backend).colour


def marker(backend: str) -> str:
    return look(backend).marker


def linestyle(backend: str) -> str:
    return look(backend).linestyle


def series_style(backend: str) -> dict[str, str]:
    """color, marker and linestyle of a backend's series (matplotlib keyword arguments)."""
    found = look(backend)
    return {"color": found.colour, "marker": found.marker, "linestyle": found.linestyle}


def mechanism_backends(backends: Sequence[str], mechanism: str) -> list[str]:
    """The backends among ``backends`` whose registered mechanism is ``mechanism``."""
    return [b for b in order(backends) if (found := _backend(b)) and found.mechanism == mechanism]


def families_of(backends: Sequence[str]) -> list[str]:
    """The families of ``backends``, in registry order of first appearance."""
    out: list[str] = []
    for b in order(backends):
        if family(b) not in out:
            out.append(family(b))
    return out


def order(backends: Sequence[str]) -> list[str]:
    """Backends in registry order (unknown ones last, by name)."""
    rank = {b: i for i, b in enumerate(registry.names())}
    return sorted({str(b) for b in backends}, key=lambda b: (rank.get(b, 10_000), b))


def rows_for(trials: pd.DataFrame, chart: str) -> pd.DataFrame:
    """The successful trials of the scenarios that declare they feed ``chart``."""
    if trials.empty:
        return trials
    feeding = scenarios.reading(chart=chart)
    return trials[trials["scenario"].isin(feeding) & (trials["status"] == TrialStatus.OK)]


def save(fig: Figure, charts_dir: Path, name: str) -> list[Path]:
    charts_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in ("png", "svg"):
        path = charts_dir / f"{name}.{ext}"
        fig.savefig(
            path, dpi=DPI, bbox_inches="tight", metadata=None if ext == "png" else {"Date": None}
        )
        if ext == "svg":
            write_tips(fig, path)
        out.append(path)
    plt.close(fig)
    return out


def summary(trials: pd.DataFrame, metric: str, x_col: str) -> pd.DataFrame:
    """Per backend and x: median/min/max over repetitions (flagged-only cells kept, marked)."""
    rows = trials[trials[metric].notna()]
    if rows.empty:
        return pd.DataFrame()
    return summarise_cells(rows, metric, keys=("backend", x_col))


def micro_summary(micro: pd.DataFrame) -> pd.DataFrame:
    """Per mechanism and count: median, min and max over the processes (``plot_series``'s shape).

    A table without processes has one row per count: its median, min = max = median.
    """
    cols = ["backend", "n_registered", "median", "min", "max", "flagged_only"]
    if micro.empty:
        return pd.DataFrame(columns=cols)
    values = micro.assign(value=micro["median_us"].astype(float))
    out = (
        values.groupby(["mechanism", "n_registered"])["value"]
        .agg(["median", "min", "max"])
        .reset_index()
        .rename(columns={"mechanism": "backend"})
    )
    out["n_registered"] = out["n_registered"].astype(float)
    return out.assign(flagged_only=False).sort_values(["backend", "n_registered"])[cols]


def plot_series(ax: Axes, summ: pd.DataFrame, x_col: str, log_x: bool = False) -> None:
    """Median with min-max bars per backend; flagged-only cells hollow and grey.

    Backends are dodged sideways a little so that error bars at the same x
    stay readable; the dodge is a small factor on a log axis, a small
    fraction of the range on a linear one.
    """
    backends = order(summ["backend"])
    xs = summ[x_col].astype(float)
    span = float(xs.max() - xs.min()) if len(xs) else 0.0
    for i, backend in enumerate(backends):
        shift = i - (len(backends) - 1) / 2

        def dodge(x: pd.Series, shift: float = shift) -> pd.Series:
            return x * (1.0 + 0.04 * shift) if log_x else x + 0.008 * span * shift

        s = summ[summ["backend"] == backend].sort_values(x_col)
        good = s[~s["flagged_only"].astype(bool)]
        mark = marker(backend)
        if not good.empty:
            yerr = np.vstack([good["median"] - good["min"], good["max"] - good["median"]])
            ax.errorbar(
                dodge(good[x_col].astype(float)), good["median"], yerr=yerr, ms=5, capsize=3,
                lw=1.6, label=look(backend).label, **series_style(backend),
            )  # fmt: skip
        bad = s[s["flagged_only"].astype(bool)]
        if not bad.empty:
            ax.plot(
                dodge(bad[x_col].astype(float)), bad["median"], linestyle="none", marker=mark,
                ms=7, mfc="none", mec=FLAGGED_COLOUR, mew=1.5,
            )  # fmt: skip
        add_tips(ax, zip(dodge(s[x_col].astype(float)), s["median"], _tips(backend, s, x_col),
                         strict=True))  # fmt: skip


def _tips(backend: str, s: pd.DataFrame, x_col: str) -> list[str]:
    """A point's hover text: its cell, how many repetitions, median and range."""
    out = []
    for r in s.to_dict("records"):
        reps = f", {r['n']} usable repetitions" if "n" in r else ""
        flagged = " (every repetition flagged)" if r.get("flagged_only") else ""
        # A chart whose point is not the median of repetitions says what it is ("point").
        point = r.get("point") if isinstance(r.get("point"), str) else "median"
        out.append(
            f"{backend}, {x_col} {r[x_col]:g}{reps}{flagged}: {point} {r['median']:.4g} "
            f"(per trial: min {r['min']:.4g}, max {r['max']:.4g})"
        )
    return out


def family_key(labels: Sequence[str]) -> list[tuple[Any, str]]:
    """Legend entries for the line style of each family drawn, when several are."""
    fams = families_of([lb for lb in labels if _backend(lb) is not None])
    if len(fams) < 2:
        return []
    return [
        (plt.Line2D([], [], color="#444444", lw=1.4, linestyle=registry.family_linestyle(f)),
         f"{registry.family_label(f)} family (line style)")
        for f in fams
    ]  # fmt: skip


def flagged_legend(ax: Axes, any_flagged: bool) -> None:
    """The panel's one legend: backends, the families' line styles, flagged cells."""
    handles, labels = ax.get_legend_handles_labels()
    for handle, label in family_key(labels):
        handles.append(handle)
        labels.append(label)
    if any_flagged:
        handles.append(
            plt.Line2D(
                [], [], linestyle="none", marker="o", mfc="none", mec=FLAGGED_COLOUR, mew=1.5
            )
        )
        labels.append("flagged cell (not in verdict)")
    if handles:
        ax.legend(handles, labels, fontsize=8, loc="best", framealpha=0.85)


def plain_log_y(ax: Axes) -> None:
    """Log y axis labelled 50, 100, 200, 500 ... rather than 6x10^2."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def mark_fd_setsize(ax: Axes, y_text_frac: float = 0.96) -> None:
    """Dotted line at 1024 in select's colour; the note goes on whichever side has room."""
    ax.axvline(FD_SETSIZE, color=colour("select"), linestyle=":", lw=1.3)
    x_frac = ax.transAxes.inverted().transform(ax.transData.transform((FD_SETSIZE, 1)))[0]
    right = x_frac < 0.75
    ax.annotate(
        "FD_SETSIZE 1024:\nselect's limit",
        xy=(FD_SETSIZE, y_text_frac), xycoords=("data", "axes fraction"),
        xytext=(4 if right else -4, 0), textcoords="offset points",
        ha="left" if right else "right", va="top", fontsize=8, color=colour("select"),
    )  # fmt: skip


def trend_words(fits: Mapping[str, Fit]) -> str:
    """'select and poll grow, epoll stays flat' from the verdict's own fits and classes.

    With several families drawn, one line per family, named ('Python: ...\nC: ...').
    """
    fams = families_of(list(fits))
    if len(fams) < 2:
        return _trend_words(fits)
    return "\n".join(
        registry.family_label(f)
        + ": "
        + _trend_words({b: fit for b, fit in fits.items() if family(b) == f})
        for f in fams
    )


def _trend_words(fits: Mapping[str, Fit]) -> str:
    from bench.analyse.flatness import change_words
    from bench.analyse.rules import FALLING, FLAT, GROWING, INSUFFICIENT

    grow, flat, fall, unclear, few = [], [], [], [], []
    for backend in order(list(fits)):
        fit = fits[backend]
        pct = fit.projected_rel_increase
        txt = (
            f"{backend} ({change_words(pct)})"
            if pct is not None and math.isfinite(pct)
            else backend
        )
        buckets = {GROWING: grow, FLAT: flat, FALLING: fall, INSUFFICIENT: few}
        buckets.get(fit.class_, unclear).append(txt)
    if few and not (grow or flat or fall or unclear):
        return "too few descriptor counts to show a trend"
    parts = []
    if grow:
        parts.append(f"{', '.join(grow)} grow{'s' if len(grow) == 1 else ''}")
    if flat:
        parts.append(f"{', '.join(flat)} stay{'s' if len(flat) == 1 else ''} flat")
    if fall:
        parts.append(f"{', '.join(fall)} fall{'s' if len(fall) == 1 else ''} (suspect)")
    if unclear:
        parts.append(f"{', '.join(unclear)} unclear (interval straddles the +-20% rule)")
    return "; ".join(parts) + (" (change over the measured range)" if parts else "")


def verdict_of(run: RunData, verdict: Verdict | None = None) -> Verdict:
    """The verdict the charts word their titles from: given, on disk, or computed once."""
    if verdict is not None:
        return verdict
    on_disk = read_verdict(run.path)
    if on_disk is not None:
        return on_disk
    from bench.analyse.verdict import compute_typed_verdict

    return compute_typed_verdict(run)


def rows_in_mode(trials: pd.DataFrame, chart: str, prefer_mode: str) -> tuple[pd.DataFrame, str]:
    """The chart's rows in ``prefer_mode`` (open/closed loop), else in the first mode measured."""
    rows = rows_for(trials, chart)
    modes = set(rows["mode"].dropna())
    mode = prefer_mode if prefer_mode in modes else (sorted(modes)[0] if modes else prefer_mode)
    return rows[rows["mode"] == mode], mode


def any_flagged(summ: pd.DataFrame) -> bool:
    return bool(not summ.empty and summ["flagged_only"].astype(bool).any())


def shared_title(fig: Figure, title: str, subtitle: str) -> None:
    fig.suptitle(title, fontsize=11, fontweight="bold", y=1.0)
    fig.text(0.5, 0.96, subtitle, ha="center", va="top", fontsize=8.5, color="#444444")
