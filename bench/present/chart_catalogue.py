"""The chart catalogue: every chart of a run declared once, and ``draw_all``.

A ``Chart`` holds everything the rest of the project knows about a chart: its
name (the file stem under ``charts/`` and the key scenarios name it by), the
caption the report heads it with, the function that draws it, and the table of
medians the report prints beside it. ``CHARTS``, ``CHART_CAPTIONS``, the
report's chart section and tables, and ``docs/update_figures.py`` read this
catalogue; none lists charts itself.

The rows a chart reads are those of the scenarios that name it
(``Scenario.charts``, read through ``Chart.scenarios``): the measuring stage
declares them by name because it never imports this later stage;
``check_scenarios`` says when a scenario names a chart the catalogue lacks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from bench import metrics
from bench.measure import scenarios
from bench.present import charts
from bench.present.chart_style import rows_for, save, verdict_of
from bench.present.crossover_chart import chart_crossover
from bench.present.idle_steps_chart import chart_idle_steps
from bench.present.latency_distribution import chart_latency_distribution
from bench.store.results import RunData
from bench.store.verdict_file import Verdict

ChartFn = Callable[[RunData, Verdict | None], Figure | None]


@dataclass(frozen=True)
class MediansTable:
    """The report's table of medians per cell for a chart: ``metric`` against ``x``."""

    metric: str
    x: str


@dataclass(frozen=True)
class Chart:
    """One chart, declared once."""

    name: str
    """File stem under ``charts/`` and the name scenarios declare in ``Scenario.charts``."""
    caption: str
    """The report's heading and alt text for it."""
    draw: ChartFn
    """(run, verdict) -> the figure, or None when the run has no rows for it."""
    table: MediansTable | None = None
    """The medians the report tabulates beside it; None: no table."""

    def __post_init__(self) -> None:
        if not self.name.strip() or not self.caption.strip():
            raise ValueError(f"chart {self.name!r}: a chart needs a name and a caption")

    def scenarios(self) -> tuple[str, ...]:
        """Names of the scenarios whose rows it reads."""
        return scenarios.reading(chart=self.name)

    def rows(self, trials: pd.DataFrame) -> pd.DataFrame:
        """The successful trials of those scenarios."""
        return rows_for(trials, self.name)


def _run_only(draw: Callable[[RunData], Figure | None]) -> ChartFn:
    """A chart that words nothing from a fit takes the run alone."""
    return lambda run, _verdict: draw(run)


# In the order the report shows them.
CATALOGUE: tuple[Chart, ...] = (
    Chart(
        "wait_cost_vs_descriptors",
        "Cost of one wait call vs registered descriptors",
        charts.chart_wait_cost,
        MediansTable(metrics.SERVER_WAIT_US_PER_CALL.name, "idle_connections"),
    ),
    Chart(
        "idle_steps_wait_cost",
        "Inside one server process: wait call cost at each idle count",
        chart_idle_steps,
    ),
    Chart(
        "cpu_per_request_vs_idle",
        "Server CPU per request vs idle connections",
        charts.chart_cpu_per_request,
        MediansTable(metrics.SERVER_CPU_US_PER_REQ.name, "idle_connections"),
    ),
    Chart(
        "latency_vs_idle",
        "p50 and p99 latency vs idle connections",
        _run_only(charts.chart_latency),
    ),
    Chart(
        "throughput_vs_active",
        "Throughput when every connection is active",
        charts.chart_throughput_active,
        MediansTable(metrics.THROUGHPUT_RPS.name, "active_connections"),
    ),
    Chart(
        "latency_distribution",
        "Latency distribution at the largest idle count all backends share",
        _run_only(chart_latency_distribution),
    ),
    Chart(
        "fd_limit_connections",
        "Connections served past FD_SETSIZE",
        _run_only(charts.chart_fd_limit),
    ),
    Chart(
        "ready_fraction_crossover",
        "Where epoll's advantage ends: its advantage vs the active share",
        chart_crossover,
    ),
)

CHARTS: dict[str, ChartFn] = {c.name: c.draw for c in CATALOGUE}
CHART_CAPTIONS: dict[str, str] = {c.name: c.caption for c in CATALOGUE}
if len(CHARTS) != len(CATALOGUE):
    raise ValueError("two charts in the catalogue share a name: each chart is declared once")


def get(name: str) -> Chart:
    """The chart called ``name``; KeyError naming the charts there are otherwise."""
    for chart in CATALOGUE:
        if chart.name == name:
            return chart
    raise KeyError(f"unknown chart {name!r}: choose from {', '.join(CHARTS)}")


def check_scenarios(declared: Iterable[scenarios.Scenario]) -> list[str]:
    """One sentence per chart name a scenario declares that the catalogue does not hold."""
    return [
        f"scenario {s.name!r} names the chart {name!r}, which bench.present.chart_catalogue "
        f"does not declare: add a Chart there or fix the name (charts: {', '.join(CHARTS)})"
        for s in declared
        for name in s.charts
        if name not in CHARTS
    ]


def draw_all(run: RunData, verdict: Verdict | None = None) -> list[Path]:
    """Draw every chart the run has data for into ``run.path/charts``; returns the files.

    ``verdict``: the run's typed verdict (``verdict_of`` finds it when not given).
    """
    files: list[Path] = []
    verdict = verdict_of(run, verdict)
    for chart in CATALOGUE:
        fig = chart.draw(run, verdict)
        if fig is not None:
            files.extend(save(fig, run.charts_dir, chart.name))
    return files
