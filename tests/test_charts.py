"""Charts and report from a SYNTHETIC run folder: valid, non-empty images matplotlib reads back."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import matplotlib.image as mpimg
import pytest
from fixtures.synthetic_run import SyntheticSpec, make_synthetic_run

from bench.analyse.verdict import compute_verdict, write_verdict
from bench.measure import scenarios
from bench.present.chart_catalogue import (
    CATALOGUE,
    CHART_CAPTIONS,
    CHARTS,
    Chart,
    check_scenarios,
    draw_all,
)
from bench.present.latency_distribution import chart_latency_distribution, latency_distribution
from bench.present.report import write_report
from bench.store import schema
from bench.store.results import RunData, load

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    spec = SyntheticSpec(repetitions=2, idle_levels=(0, 500, 1000, 2000), active_levels=(8, 256),
                         flag_every=9)  # fmt: skip
    return make_synthetic_run(tmp_path_factory.mktemp("results"), spec)


@pytest.fixture(scope="module")
def files(run: RunData) -> list[Path]:
    return draw_all(run)


def test_draw_all_writes_every_chart_as_valid_png_and_svg(run: RunData, files: list[Path]) -> None:
    names = {p.stem for p in files}
    # The synthetic run has no ready-fraction or idle-steps rows: no crossover or steps chart.
    assert names == set(CHARTS) - {"ready_fraction_crossover", "idle_steps_wait_cost"}
    for path in files:
        assert path.parent == run.path / schema.CHARTS_DIR
        data = path.read_bytes()
        assert len(data) > 5_000, path
        if path.suffix == ".png":
            assert data.startswith(PNG_MAGIC)
            image = mpimg.imread(path)
            height, width = image.shape[:2]
            assert width >= 600 and height >= 400
            assert image.std() > 0.01  # not a blank canvas
        else:
            assert b"<svg" in data[:2000]


def test_latency_distribution_prefers_raw_histograms_and_falls_back_to_columns(
    run: RunData, tmp_path: Path
) -> None:
    rows = run.trials[
        (run.trials["scenario"] == "idle-scaling") & (run.trials["idle_connections"] == 0)
    ]
    from_raw, source = latency_distribution(run, rows)
    assert "HdrHistograms" in source and set(from_raw) == {"select", "poll", "epoll"}
    without_raw = RunData(path=tmp_path, meta=run.meta, trials=run.trials, micro=run.micro)
    from_cols, source = latency_distribution(without_raw, rows)
    assert "raw histograms missing" in source and set(from_cols) == set(from_raw)
    assert chart_latency_distribution(without_raw) is not None


def test_a_run_with_only_micro_data_draws_what_it_can(run: RunData, tmp_path: Path) -> None:
    only_micro = RunData(path=tmp_path, meta=run.meta, trials=run.trials.iloc[0:0], micro=run.micro)
    files = draw_all(only_micro)
    assert {p.stem for p in files} == {"wait_cost_vs_descriptors"}


def test_report_embeds_verdict_charts_flags_and_warnings(run: RunData, files: list[Path]) -> None:
    verdict = compute_verdict(run)
    write_verdict(run, verdict)
    text = write_report(load(run.path)).read_text()
    assert "## Verdict" in text
    # Each claim's row of the verdict table carries its own status (not the rules' text).
    for c in verdict["claims"]:
        row = rf"^\|\s*{re.escape(str(c['id']))}\. .*\|\s*\*\*{re.escape(c['status'])}\*\*\s*\|"
        assert re.search(row, text, re.MULTILINE), (c["id"], c["status"])
    for name in {p.stem for p in files}:
        caption = CHART_CAPTIONS[name]
        assert f"### {caption}\n\n![{caption}](charts/{name}.png)" in text
    for chart in CATALOGUE:
        if chart.table is not None and chart.scenarios():
            assert f": median {chart.table.metric}**" in text, chart.name
    assert "SYNTHETIC" in text  # the run's warnings
    assert "synthetic flag" in text  # flagged trials listed
    assert "## Machine" in text and "## Method" in text


def test_every_chart_a_scenario_names_is_in_the_catalogue_and_every_chart_is_fed() -> None:
    assert check_scenarios(scenarios.all_scenarios()) == []
    for chart in CATALOGUE:
        assert chart.scenarios(), f"no scenario feeds the chart {chart.name!r}"
        assert CHART_CAPTIONS[chart.name] == chart.caption and CHARTS[chart.name] is chart.draw


def test_a_scenario_naming_an_unknown_chart_is_named_with_the_remedy() -> None:
    idle = scenarios.get("idle-scaling")
    typo = dataclasses.replace(idle, charts=(*idle.charts, "latency_vs_idel"))
    (problem,) = check_scenarios([typo])
    assert "'idle-scaling'" in problem and "'latency_vs_idel'" in problem
    assert "add a Chart there or fix the name" in problem


@pytest.mark.parametrize("name, caption", [("", "A caption"), ("a_chart", ""), ("a_chart", " ")])
def test_a_chart_needs_a_name_and_a_caption(name: str, caption: str) -> None:
    with pytest.raises(ValueError, match="needs a name and a caption"):
        Chart(name, caption, lambda run, verdict: None)
