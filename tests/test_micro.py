"""The wait-call micro benchmarks run under plain pytest (benchmarks disabled: one call each),
and a short real pytest-benchmark run converts into the micro table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.measure.micro import MicroBenchmarkError, micro_table_from_json, run_micro

# Collected here so plain `pytest` runs every quick case once and checks its readiness count.
from bench.measure.micro.test_wait_cost import (  # noqa: F401
    FD_SETSIZE,
    descriptors,
    open_socketpairs,
    test_wait_cost,
)
from bench.store import schema


def test_select_descriptors_are_packed_below_fd_setsize() -> None:
    fds = open_socketpairs(1000)
    try:
        assert len(fds.watched) == 1000
        assert max(fds.watched) < FD_SETSIZE
        assert min(fds.peers) >= FD_SETSIZE
    finally:
        fds.close()


def test_run_micro_short_real_run_converts(tmp_path: Path) -> None:
    out = tmp_path / "micro.json"
    df = run_micro(out, quick=True, max_time_s=0.002, keyword="16")
    assert list(df.columns) == list(schema.MICRO_COLUMNS)
    assert set(df["mechanism"]) == {"select", "poll", "epoll"}
    assert set(df["ready"]) == {"one", "all"}
    assert set(df["n_registered"]) == {16}
    assert (df["median_us"] > 0).all() and (df["rounds"] >= 5).all()
    doc = json.loads(out.read_text())
    assert len(doc["benchmarks"]) == len(df) == 6
    # The converter turns pytest-benchmark's seconds into microseconds.
    one = next(b for b in doc["benchmarks"] if b["extra_info"]["mechanism"] == "poll"
               and b["extra_info"]["ready"] == "all")  # fmt: skip
    row = df[(df["mechanism"] == "poll") & (df["ready"] == "all")].iloc[0]
    assert row["median_us"] == pytest.approx(one["stats"]["median"] * 1e6)
    assert row["min_us"] <= row["median_us"]


def test_converter_refuses_foreign_benchmark_json() -> None:
    doc = {"benchmarks": [{"name": "test_other", "params": {}, "extra_info": {}, "stats": {}}]}
    with pytest.raises(ValueError, match="not written by bench/measure/micro"):
        micro_table_from_json(doc)


def test_run_micro_reports_a_failing_selection(tmp_path: Path) -> None:
    with pytest.raises(MicroBenchmarkError, match="micro benchmarks failed"):
        run_micro(tmp_path / "none.json", quick=True, keyword="no_such_benchmark_anywhere")
