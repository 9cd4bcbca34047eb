"""Hover text for chart points: an SVG ``<title>`` over each point, read where the chart is shown.

Each point gets an invisible marker of its own (fully transparent, so the PNG is
unchanged) whose group id names its text; when the SVG is saved its ``<title>`` is
written into that group, which browsers show on hover (report.html inlines the SVG).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

TIP_GID = "bench-tip"
_ATTR = "_bench_tips"  # on the Figure: gid -> text


def add_tips(ax: Axes, points: Iterable[tuple[float, float, str]]) -> None:
    """An invisible hover target at each (x, y) with its text."""
    fig = ax.figure
    tips: dict[str, str] = fig.__dict__.setdefault(_ATTR, {})
    for x, y, text in points:
        gid = f"{TIP_GID}-{len(tips)}"
        (target,) = ax.plot([x], [y], linestyle="none", marker="o", ms=9, alpha=0.0)
        target.set_gid(gid)
        tips[gid] = text


def write_tips(fig: Figure, svg: Path) -> None:
    """Write each point's text as the ``<title>`` of its group in the saved SVG."""
    tips: dict[str, str] = fig.__dict__.get(_ATTR) or {}
    if not tips:
        return
    text = svg.read_text(encoding="utf-8")
    for gid, tip in tips.items():
        opening = f'<g id="{gid}">'
        text = text.replace(opening, f"{opening}<title>{html.escape(tip)}</title>", 1)
    svg.write_text(text, encoding="utf-8")
