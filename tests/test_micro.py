"""The wait-call micro benchmarks run under plain pytest (benchmarks disabled: one call each),
and a short real pytest-benchmark run converts into the micro table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.measure.micro import MicroBenchmarkError, micro_table_from_json, run_micro

# Collected here so plain `pytest` runs every quick case once and checks its readiness count.
from bench.measure.micro.test_wait_cost import (  # noqa: F401
    EPOLL_MAX_EVENTS,
    FD_SETSIZE,
    MIN_BLOCKS,
    ORDER_SEED,
    SETS,
    descriptors,
    interleaved_blocks,
    open_socketpairs,
    ready_count,
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
    df = run_micro(out, quick=True, set_name="tiny", max_time_s=0.002, keyword="wait_cost")
    assert list(df.columns) == list(schema.MICRO_COLUMNS)
    assert set(df["mechanism"]) == {"select", "poll", "epoll"}
    assert set(df["ready"]) == {"one", "all"}
    for mech, counts in SETS["tiny"].items():
        assert sorted(df[df["mechanism"] == mech]["n_registered"].unique()) == list(counts), mech
    assert (df["median_us"] > 0).all() and (df["rounds"] >= MIN_BLOCKS).all()
    assert (df["min_us"] <= df["median_us"]).all()
    # One pytest-benchmark entry per mechanism and readiness; its rows are the counts.
    doc = json.loads(out.read_text())
    assert len(doc["benchmarks"]) == 6
    entry = next(b for b in doc["benchmarks"] if b["extra_info"]["mechanism"] == "poll"
                 and b["extra_info"]["rows"][0]["ready"] == "all")  # fmt: skip
    assert entry["extra_info"]["order_seed"] == ORDER_SEED
    first = entry["extra_info"]["rows"][0]
    row = df[(df["mechanism"] == "poll") & (df["ready"] == "all")
             & (df["n_registered"] == first["n_registered"])].iloc[0]  # fmt: skip
    assert row["median_us"] == pytest.approx(first["stats_us"]["median"])


def test_every_block_times_every_count_once_in_a_seeded_random_order() -> None:
    visits: list[int] = []

    def call_for(n: int):
        def call() -> int:
            visits.append(n)
            return 1

        return call

    counts = (16, 256, 1000, 4000)
    calls = {n: call_for(n) for n in counts}
    one_each = dict.fromkeys(counts, 1)
    samples = interleaved_blocks(calls, one_each, 0.0, 7, min_blocks=6, per_slot=one_each)
    assert all(len(samples[n]) == 6 for n in counts)
    blocks = [tuple(visits[i : i + len(counts)]) for i in range(0, len(visits), len(counts))]
    assert len(blocks) == 6 and all(sorted(b) == sorted(counts) for b in blocks)
    assert len(set(blocks)) > 1  # the order is shuffled, not fixed
    # The same seed gives the same orders.
    first = list(visits)
    visits.clear()
    interleaved_blocks(calls, one_each, 0.0, 7, min_blocks=6, per_slot=one_each)
    assert visits == first


def test_a_wait_call_that_sees_other_readiness_fails_the_benchmark() -> None:
    with pytest.raises(AssertionError, match="saw 1 ready, expected 2"):
        interleaved_blocks({16: lambda: 1}, {16: 2}, 0.0, seed=1)


def test_epoll_returns_at_most_the_servers_maxevents() -> None:
    assert ready_count("epoll", "all", 4000) == EPOLL_MAX_EVENTS == 1024
    assert ready_count("poll", "all", 4000) == 4000 and ready_count("epoll", "one", 4000) == 1


def test_converter_refuses_foreign_benchmark_json() -> None:
    doc = {"benchmarks": [{"name": "test_other", "params": {}, "extra_info": {}, "stats": {}}]}
    with pytest.raises(ValueError, match="not written by bench/measure/micro"):
        micro_table_from_json(doc)


def test_run_micro_reports_a_failing_selection(tmp_path: Path) -> None:
    with pytest.raises(MicroBenchmarkError, match="micro benchmarks failed"):
        run_micro(tmp_path / "none.json", quick=True, keyword="no_such_benchmark_anywhere")
