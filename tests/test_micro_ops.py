"""The register / modify / unregister and blocking-wake micro benchmarks: sets, table, a run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.measure.micro import ctl_cost as ctl
from bench.measure.micro import run_micro
from bench.measure.micro import wake_cost as wake
from bench.store import schema
from bench.tables.micro import MICRO_KEYS, PROCESS, micro_table_from_json


def test_the_quick_set_has_no_new_cases_and_full_has_every_mechanism() -> None:
    assert ctl.cases("quick") == [] and wake.cases("quick") == []
    for module in (ctl, wake):
        assert {c[0] for c in module.cases("full")} == {"select", "poll", "epoll"}
        assert max(c[1] for c in module.cases("full") if c[0] == "select") <= 1000
    assert {c[2] for c in ctl.cases("tiny")} == set(ctl.OPERATIONS)


def _bench(info: dict, median_s: float = 32e-6) -> dict:
    stats = {"median": median_s, "mean": median_s, "stddev": 0.0, "iqr": 0.0, "min": median_s,
             "rounds": 7}  # fmt: skip
    return {"name": "x", "params": {}, "extra_info": info, "stats": stats}


def test_the_table_divides_batches_takes_own_rows_and_calls_the_rest_wait() -> None:
    doc = {
        "benchmarks": [
            _bench({"mechanism": "epoll", "n_registered": 16, "ready": "none",
                    "operation": "register", "batch": 32}),
            _bench({"mechanism": "poll", "n_registered": 16, "ready": "one"}),
            _bench({"mechanism": "select", "n_registered": 16, "rows": [
                {"operation": "wake", "ready": "woken", "stats_us": {
                    "median": 9.0, "mean": 9.5, "stddev": 1.0, "iqr": 0.5, "min": 8.0,
                    "rounds": 40}}]}),
        ]
    }  # fmt: skip
    df = micro_table_from_json(doc).set_index("operation")
    assert list(MICRO_KEYS) == ["operation", "mechanism", "n_registered", "ready"]
    assert df.loc["register", "median_us"] == pytest.approx(1.0)  # 32 us / 32 calls
    assert df.loc["wait", "ready"] == "one" and df.loc["wait", "median_us"] == pytest.approx(32)
    assert df.loc["wake", "median_us"] == 9.0 and df.loc["wake", "rounds"] == 40


@pytest.mark.slow  # fresh processes timing every case
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_a_tiny_run_of_the_new_cases(tmp_path: Path) -> None:
    df = run_micro(tmp_path / "m.json", quick=True, set_name="tiny", max_time_s=0.004,
                   keyword="ctl_cost or wake_cost", processes=2)  # fmt: skip
    assert list(df.columns) == list(schema.MICRO_COLUMNS)
    # These cases run in the first process only; the second one selected none of them.
    assert set(df[PROCESS]) == {0}
    ops = set(ctl.OPERATIONS) | {"wake", "blocking-wait-cpu"}
    assert set(df["operation"]) == ops
    for op in ops:
        assert set(df[df["operation"] == op]["mechanism"]) == {"select", "poll", "epoll"}, op
    # The new rows never pass for wait calls in a reader that filters on `ready` alone.
    assert not df["ready"].isin(["one", "all"]).any()
    assert (df["median_us"] > 0).all() and (df["rounds"] >= 5).all()
