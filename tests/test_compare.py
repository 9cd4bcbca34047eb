"""compare_runs on SYNTHETIC runs: a real 2x difference is flagged, noise is not."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fixtures.synthetic_run import SyntheticSpec, synthetic_run_in_memory

from bench.analyse.compare import compare_runs, format_compare

BASE = SyntheticSpec(noise=0.05, idle_levels=(0, 1000), active_levels=(8, 256), include_micro=True)


def _throughput(df, mode="closed"):
    return df[(df["metric"] == "throughput_rps") & (df["mode"] == mode)]


def test_a_doubled_throughput_is_beyond_noise() -> None:
    a = synthetic_run_in_memory(BASE)
    b = synthetic_run_in_memory(
        SyntheticSpec(**{**BASE.__dict__, "throughput_scale": 2.0, "seed": 99})
    )
    df = compare_runs(a, b)
    thr = _throughput(df)
    assert len(thr) > 0
    assert thr["beyond_noise"].all()
    assert thr["ratio_b_over_a"].between(1.6, 2.5).all()
    text = format_compare(df)
    assert "*" in text and "beyond run-to-run noise" in text


def test_the_same_process_measured_twice_is_mostly_noise() -> None:
    a = synthetic_run_in_memory(BASE)
    b = synthetic_run_in_memory(SyntheticSpec(**{**BASE.__dict__, "seed": 99}))
    df = compare_runs(a, b)
    thr = _throughput(df)
    assert len(thr) > 0
    # Same distribution, different noise draws: at 95% a few comparisons may cross by chance.
    assert thr["beyond_noise"].mean() <= 0.2
    micro = df[df["table"] == "micro"]
    assert len(micro) > 0
    assert micro["beyond_noise"].mean() <= 0.2


def test_runs_without_common_cells_say_so(tmp_path: Path) -> None:
    a = synthetic_run_in_memory(BASE)
    other = {"idle_levels": (7,), "active_levels": (3,), "include_micro": False}
    b = synthetic_run_in_memory(SyntheticSpec(**{**BASE.__dict__, **other}))
    b = replace(b, trials=b.trials[b.trials["scenario"] != "fd-limit"])
    df = compare_runs(a, b)
    assert df.empty
    assert "No cells in common" in format_compare(df)
