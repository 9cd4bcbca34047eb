"""Charts and report from a SYNTHETIC run folder: valid, non-empty images matplotlib reads back."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import pytest
from fixtures.synthetic_run import SyntheticSpec, make_synthetic_run

from bench import schema
from bench.charts import CHARTS, draw_all
from bench.report import write_report
from bench.results import RunData, load
from bench.verdict import compute_verdict, write_verdict

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    spec = SyntheticSpec(repetitions=2, idle_levels=(0, 500, 1000, 2000), active_levels=(8, 256),
                         flag_every=9)  # fmt: skip
    return make_synthetic_run(tmp_path_factory.mktemp("results"), spec)


def test_draw_all_writes_every_chart_as_valid_png_and_svg(run: RunData) -> None:
    files = draw_all(run)
    names = {p.stem for p in files}
    assert names == set(CHARTS)
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


def test_charts_redraw_from_the_folder_alone_and_without_raw_histograms(run: RunData) -> None:
    for raw in (run.path / schema.RAW_DIR).glob("trial_*.json"):
        raw.unlink()  # the latency distribution must fall back to the percentile columns
    files = draw_all(load(run.path))
    assert any(p.stem == "latency_distribution" for p in files)


def test_a_run_with_only_micro_data_draws_what_it_can(run: RunData, tmp_path: Path) -> None:
    only_micro = RunData(path=tmp_path, meta=run.meta, trials=run.trials.iloc[0:0], micro=run.micro)
    files = draw_all(only_micro)
    assert {p.stem for p in files} == {"wait_cost_vs_descriptors"}


def test_report_embeds_verdict_charts_flags_and_warnings(run: RunData) -> None:
    draw_all(run)
    verdict = compute_verdict(run)
    write_verdict(run, verdict)
    text = write_report(load(run.path)).read_text()
    assert "## Verdict" in text
    assert any(c["status"] in text for c in verdict["claims"])
    for name in CHARTS:
        assert f"charts/{name}.png" in text
    assert "SYNTHETIC" in text  # the run's warnings
    assert "synthetic flag" in text  # flagged trials listed
    assert "## Machine" in text and "## Method" in text
