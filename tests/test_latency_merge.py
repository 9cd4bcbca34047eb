"""A cell's latency percentiles come from its repetitions' HdrHistograms merged, never averaged."""

from __future__ import annotations

import re

import numpy as np
import pytest
from fixtures.synthetic_run import SyntheticSpec, make_synthetic_run
from hdrh.histogram import HdrHistogram

from bench.present.chart_style import rows_in_mode
from bench.present.chart_tips import TIP_GID
from bench.present.charts import MERGE_KEYS, chart_latency, merged_cells
from bench.present.latency_distribution import latency_distribution
from bench.present.latency_merge import cell_percentiles, merge, percentile_us, trial_histogram
from bench.store.results import RunData
from bench.tables import Mode


def _histogram(values: np.ndarray) -> HdrHistogram:
    hist = HdrHistogram(1, 60_000_000, 3)
    for v in values:
        hist.record_value(int(v))
    return hist


def test_two_merged_histograms_give_the_percentiles_of_all_their_samples() -> None:
    # 1..1000 and 1001..2000 us: together 1..2000, whose p50 is 1000 and p99 1980; the
    # median of the two p99s (990 and 1990) would say 1490, a value of neither tail.
    a, b = _histogram(np.arange(1, 1001)), _histogram(np.arange(1001, 2001))
    merged = merge([a, b])
    assert merged is not None and merged.get_total_count() == 2000
    assert percentile_us(merged, 50.0) == pytest.approx(1000, rel=1e-3)
    assert percentile_us(merged, 99.0) == pytest.approx(1980, rel=1e-3)
    assert percentile_us(merged, 100.0) == pytest.approx(2000, rel=1e-3)
    assert merge([None, _histogram(np.array([], dtype=int))]) is None


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    spec = SyntheticSpec(repetitions=3, idle_levels=(0, 1000), active_levels=(8,),
                         include_micro=False)  # fmt: skip
    return make_synthetic_run(tmp_path_factory.mktemp("results"), spec)


def test_a_cells_percentiles_rest_on_every_sample_of_its_repetitions(run: RunData) -> None:
    rows = run.trials[run.trials["scenario"] == "idle-scaling"]
    cells = cell_percentiles(run, rows, MERGE_KEYS, (50.0, 99.0))
    assert not cells.empty
    for cell in cells.to_dict("records"):
        grp = rows[(rows["backend"] == cell["backend"])
                   & (rows["idle_connections"] == cell["idle_connections"])]  # fmt: skip
        hists = [trial_histogram(run, rel) for rel in grp["raw_file"]]
        assert cell["trials_merged"] == len(grp) == len(hists)
        assert cell["samples"] == sum(h.get_total_count() for h in hists)
        every = merge(hists)
        assert cell["p99_us"] == percentile_us(every, 99.0)


def test_the_latency_chart_plots_the_merged_percentiles(run: RunData) -> None:
    fig = chart_latency(run)
    assert fig is not None
    tips = fig.__dict__["_bench_tips"]
    rows, _ = rows_in_mode(run.trials, "latency_vs_idle", Mode.OPEN)
    merged = merged_cells(run, rows)
    assert set(merged["trials_merged"]) == {3}  # the open loop's 3 repetitions per cell
    for cell in merged.to_dict("records"):
        for p in (50, 99):
            head = f"{cell['backend']}, idle_connections {cell['idle_connections']:g}"
            want = (f"p{p} of {cell['trials_merged']} merged histograms ({cell['samples']} "
                    f"samples) {cell[f'p{p}_us']:.4g}")  # fmt: skip
            assert any(t.startswith(head) and want in t for t in tips.values()), (head, want)
    assert all(re.fullmatch(rf"{TIP_GID}-\d+", gid) for gid in tips)


def test_the_distribution_names_the_samples_it_rests_on(run: RunData) -> None:
    rows = run.trials[(run.trials["scenario"] == "idle-scaling") & (run.trials["mode"] == "open")]
    rows = rows[rows["idle_connections"] == rows["idle_connections"].max()]
    dist, source = latency_distribution(run, rows)
    assert "merged HdrHistograms" in source
    for backend, d in dist.items():
        hists = [trial_histogram(run, r) for r in rows[rows["backend"] == backend]["raw_file"]]
        every = merge(hists)
        assert set(d["samples"]) == {every.get_total_count()}
        p99 = d.loc[d["percentile"] == 99.0, "latency_us"].item()
        assert p99 == percentile_us(every, 99.0)
