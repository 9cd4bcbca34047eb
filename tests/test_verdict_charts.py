"""Families on the charts: colour per backend, marker per mechanism, line style per family."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from fixtures.synthetic_run import SyntheticSpec, make_synthetic_run

from bench.analyse.flatness import change_words
from bench.analyse.rules import CLAIM3_CPU_LABEL, CLAIM3_WAIT_LABEL, GROWING
from bench.analyse.verdict import compute_typed_verdict
from bench.present import chart_catalogue, charts
from bench.present.chart_style import (
    flagged_legend,
    plot_series,
    series_style,
    summary,
    trend_words,
)
from bench.store.results import RunData
from bench.store.verdict_file import Verdict
from servers import registry

BACKENDS = ("select", "poll", "epoll", "c-select", "c-poll", "c-epoll")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    spec = SyntheticSpec(repetitions=2, idle_levels=(0, 500, 1000, 2000), active_levels=(8, 256),
                         backends=BACKENDS)  # fmt: skip
    return make_synthetic_run(tmp_path_factory.mktemp("results"), spec)


def test_twins_share_a_marker_and_families_differ_in_line_style() -> None:
    py, c = series_style("epoll"), series_style("c-epoll")
    assert py["marker"] == c["marker"] and py["color"] != c["color"]
    assert py["linestyle"] == registry.family_linestyle(registry.FAMILY_PYTHON_LOOP) == "-"
    assert c["linestyle"] == registry.family_linestyle(registry.FAMILY_C) == "--"
    assert registry.family_linestyle(registry.FAMILY_EXTERNAL) == ":"
    assert registry.family_linestyle(registry.FAMILY_PYTHON_REFERENCE) == "-."
    unknown = series_style("not-registered")
    assert unknown["linestyle"] == "-" and unknown["marker"] == registry.DEFAULT_MARKER


def test_a_backend_declaring_its_own_look_is_drawn_with_it(monkeypatch) -> None:
    """Marker, line style and legend label declared with a backend reach its series."""
    own = dataclasses.replace(
        registry.get("poll"), name="poll-own-look", marker="*", linestyle=":", label="my poll"
    )
    monkeypatch.setitem(registry._REGISTRY, own.name, own)
    assert series_style(own.name) == {"color": own.colour, "marker": "*", "linestyle": ":"}
    summ = pd.DataFrame(
        {"backend": [own.name] * 2, "x": [1.0, 2.0], "median": [1.0, 2.0], "min": [0.5, 1.5],
         "max": [1.5, 2.5], "flagged_only": [False, False]}
    )  # fmt: skip
    fig, ax = plt.subplots()
    plot_series(ax, summ, "x")
    labels = ax.get_legend_handles_labels()[1]
    plt.close(fig)
    assert labels == ["my poll"]


def test_one_legend_names_every_backend_and_keys_the_families(run: RunData) -> None:
    rows = run.trials[run.trials["scenario"] == "idle-scaling"]
    summ = summary(rows[rows["mode"] == "open"], "server_cpu_us_per_req", "idle_connections")
    fig, ax = plt.subplots()
    plot_series(ax, summ, "idle_connections")
    styles = {bars.get_label(): bars.lines[0].get_linestyle() for bars in ax.containers}
    flagged_legend(ax, False)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)
    assert set(BACKENDS) <= set(labels)
    assert "Python family (line style)" in labels and "C family (line style)" in labels
    assert styles["c-epoll"] == "--" and styles["epoll"] == "-"


def test_trend_words_are_given_per_family_when_several_are_drawn(run: RunData) -> None:
    fits = compute_typed_verdict(run).growth_fits(CLAIM3_WAIT_LABEL)
    lines = trend_words(fits).split("\n")
    assert lines[0].startswith("Python: ") and lines[1].startswith("C: ")
    assert "c-epoll" in lines[1] and "c-epoll" not in lines[0]
    only_python = {b: f for b, f in fits.items() if not b.startswith("c-")}
    assert "\n" not in trend_words(only_python)


@pytest.mark.slow  # every chart of two families drawn: seconds
def test_every_chart_draws_both_families(run: RunData, tmp_path: Path) -> None:
    fig = charts.chart_throughput_active(run)
    assert fig is not None
    title = fig.axes[0].get_title()
    plt.close(fig)
    assert "epoll vs select" in title and "c-epoll vs c-select" in title
    files = chart_catalogue.draw_all(run)
    # The synthetic run has no ready-fraction or idle-steps rows: no crossover or steps chart.
    assert {p.stem for p in files} == set(chart_catalogue.CHARTS) - {
        "ready_fraction_crossover",
        "idle_steps_wait_cost",
    }


def _with_fit(verdict: Verdict, metric: str, backend: str, **changes: object) -> Verdict:
    """The verdict with one backend's fit of one claim-3 metric changed, everywhere it is."""
    claims = []
    for claim in verdict.claims:
        families = {}
        for name, block in claim.families.items():
            metrics = [
                replace(m, backends={b: replace(f, **changes) if b == backend else f
                                     for b, f in m.backends.items()})
                if m.metric == metric and m.backends and backend in m.backends else m
                for m in block.evidence.metrics or []
            ]  # fmt: skip
            evidence = replace(block.evidence, metrics=metrics or block.evidence.metrics)
            families[name] = replace(block, evidence=evidence)
        claims.append(replace(claim, families=families))
    return replace(verdict, claims=claims)


def test_chart_titles_read_the_verdicts_fits_not_their_own(run: RunData) -> None:
    verdict = compute_typed_verdict(run)
    altered = _with_fit(
        verdict, CLAIM3_CPU_LABEL, "c-epoll", projected_rel_increase=7.77, class_=GROWING
    )
    assert altered.growth_fits(CLAIM3_CPU_LABEL)["c-epoll"].projected_rel_increase == 7.77
    words = f"c-epoll ({change_words(7.77)})"
    fig = charts.chart_cpu_per_request(run, altered)
    assert fig is not None
    title = fig.axes[0].get_title()
    plt.close(fig)
    assert words in title
    fig = charts.chart_cpu_per_request(run, verdict)
    assert fig is not None
    assert words not in fig.axes[0].get_title()
    plt.close(fig)
    altered = _with_fit(verdict, CLAIM3_WAIT_LABEL, "epoll", projected_rel_increase=5.55,
                        class_=GROWING)  # fmt: skip
    fig = charts.chart_wait_cost(run, altered)
    assert fig is not None
    subtitle = " ".join(t.get_text() for t in fig.texts)
    plt.close(fig)
    assert f"epoll ({change_words(5.55)})" in subtitle


def _with_all_active_ratio(verdict: Verdict, ratio: float) -> Verdict:
    """The verdict with every all-active comparison's decision ratio set to ``ratio``."""
    claims = []
    for claim in verdict.claims:
        families = {}
        for name, block in claim.families.items():
            regimes = [
                replace(r, comparisons=[
                    replace(c, decision=replace(c.decision, ratio=ratio))
                    if c.decision is not None else c
                    for c in r.comparisons
                ]) if r.regime == "all-active" else r
                for r in block.evidence.regimes or []
            ]  # fmt: skip
            evidence = replace(block.evidence, regimes=regimes or block.evidence.regimes)
            families[name] = replace(block, evidence=evidence)
        claims.append(replace(claim, families=families))
    return replace(verdict, claims=claims)


def test_the_all_active_chart_reads_the_verdicts_decisions_not_its_own(run: RunData) -> None:
    verdict = compute_typed_verdict(run)
    fig = charts.chart_throughput_active(run, _with_all_active_ratio(verdict, 4.321))
    assert fig is not None
    title = fig.axes[0].get_title()
    plt.close(fig)
    assert "CPU/request 4.32x" in title
    fig = charts.chart_throughput_active(run, verdict)
    assert fig is not None
    assert "4.32x" not in fig.axes[0].get_title()
    plt.close(fig)
