"""The wait-call micro benchmarks run under plain pytest (benchmarks disabled: one call each),
and a short real pytest-benchmark run converts into the micro table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.measure import micro
from bench.measure.micro import MicroBenchmarkError, run_micro, run_to_end

# Collected here so plain `pytest` runs every quick case once and checks its readiness count.
from bench.measure.micro.wait_cost import (  # noqa: F401
    EPOLL_MAX_EVENTS,
    FD_SETSIZE,
    MIN_BLOCKS,
    ORDER_SEED,
    SETS,
    descriptors,
    interleaved_blocks,
    ready_count,
    test_wait_cost,
)
from bench.store import schema
from bench.tables.micro import MICRO_KEYS, PROCESS, micro_table_from_json


def test_select_descriptors_are_packed_below_fd_setsize() -> None:
    # In a fresh process, as the micro benchmarks run: a test worker that has drawn
    # charts holds descriptors of its own in the low numbers.
    code = (
        "import json; from bench.measure.micro.wait_cost import open_socketpairs\n"
        "fds = open_socketpairs(1000)\n"
        "print(json.dumps([fds.watched, fds.peers])); fds.close()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    watched, peers = json.loads(done.stdout)
    assert len(watched) == 1000
    assert max(watched) < FD_SETSIZE
    assert min(peers) >= FD_SETSIZE


# Two fresh processes, each timing every count of three mechanisms: seconds.
@pytest.mark.slow
def test_run_micro_times_every_count_in_each_fresh_process(tmp_path: Path) -> None:
    out = tmp_path / "micro.json"
    df = run_micro(out, quick=True, set_name="tiny", max_time_s=0.004, keyword="wait_cost",
                   processes=2)  # fmt: skip
    assert list(df.columns) == list(schema.MICRO_COLUMNS)
    assert set(df["mechanism"]) == {"select", "poll", "epoll"}
    assert set(df["ready"]) == {"one", "all"} and set(df["operation"]) == {"wait"}
    # One row per (mechanism, ready, count, process): every process timed every count.
    assert set(df[PROCESS]) == {0, 1}
    assert not df.duplicated([*MICRO_KEYS, PROCESS]).any()
    for mech, counts in SETS["tiny"].items():
        for (ready, process), grp in df[df["mechanism"] == mech].groupby(["ready", PROCESS]):
            assert sorted(grp["n_registered"]) == list(counts), (mech, ready, process)
    assert (df["median_us"] > 0).all() and (df["rounds"] >= MIN_BLOCKS).all()
    assert (df["min_us"] <= df["median_us"]).all()
    # One merged document: a pytest-benchmark entry per mechanism, readiness and process,
    # each saying which process ran it; the processes' own files are gone.
    doc = json.loads(out.read_text())
    assert [p["process"] for p in doc["processes"]] == [0, 1]
    assert len(doc["benchmarks"]) == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["micro.json"]
    entry = next(b for b in doc["benchmarks"] if b["extra_info"]["mechanism"] == "poll"
                 and b["extra_info"]["rows"][0]["ready"] == "all"
                 and b["extra_info"][PROCESS] == 1)  # fmt: skip
    # Each process draws its own block orders.
    assert entry["extra_info"]["order_seed"] == ORDER_SEED + 1
    first = entry["extra_info"]["rows"][0]
    row = df[(df["mechanism"] == "poll") & (df["ready"] == "all") & (df[PROCESS] == 1)
             & (df["n_registered"] == first["n_registered"])].iloc[0]  # fmt: skip
    assert row["median_us"] == pytest.approx(first["stats_us"]["median"])


def test_the_time_budget_is_shared_between_the_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[list[str]] = []

    def record(cmd, env, cwd, timeout_s):  # no benchmark runs: only the commands matter
        commands.append(list(cmd))
        out = next(c.split("=", 1)[1] for c in cmd if c.startswith("--benchmark-json="))
        Path(out).write_text(json.dumps({"benchmarks": []}))
        return 0, ""

    monkeypatch.setattr(micro, "run_to_end", record)
    run_micro(tmp_path / "m.json", quick=True, max_time_s=0.5, processes=5)
    assert len(commands) == 5
    assert all("--benchmark-max-time=0.1" in c for c in commands)
    # The register/modify/unregister and wake cases run in the first process only.
    assert [sum(m.endswith("_cost.py") and "=" not in m for m in c) for c in commands] == [
        3,
        1,
        1,
        1,
        1,
    ]


def _broken_wait_module(tmp_path: Path, body: str) -> Path:
    module = tmp_path / "broken" / "wait_cost.py"
    module.parent.mkdir()
    module.write_text(f"def test_wait_cost(benchmark):\n    {body}\n")
    return module


@pytest.mark.slow  # about a second: the full suite runs it, the fast tier does not
def test_a_failing_process_is_a_clear_error_that_keeps_the_processes_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Processes after the first run BENCH_MODULE alone: point it at a failing module.
    monkeypatch.setattr(micro, "BENCH_MODULE", _broken_wait_module(
        tmp_path, "raise RuntimeError('wait call exploded')"))  # fmt: skip
    out = tmp_path / "micro.json"
    with pytest.raises(MicroBenchmarkError, match=r"failed in process 1 of 0\.\.2") as err:
        run_micro(out, quick=True, set_name="tiny", max_time_s=0.003, keyword="wait_cost",
                  processes=3)  # fmt: skip
    assert "wait call exploded" in str(err.value)
    kept = err.value.table
    assert set(kept[PROCESS]) == {0} and len(kept) > 0
    assert [p["process"] for p in json.loads(out.read_text())["processes"]] == [0]


@pytest.mark.slow  # about a second: the full suite runs it, the fast tier does not
def test_a_process_past_its_timeout_is_killed_by_pid(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    with pytest.raises(subprocess.TimeoutExpired):
        run_to_end([sys.executable, "-c", code], dict(os.environ), tmp_path, timeout_s=1.0)
    _assert_gone(int(pid_file.read_text()))


def test_an_interrupted_run_kills_its_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = subprocess.Popen.communicate
    pids: list[int] = []

    def interrupted(self, input=None, timeout=None):  # Ctrl-C while waiting for the child
        if not pids:
            pids.append(self.pid)
            raise KeyboardInterrupt
        return real(self, input, timeout)

    monkeypatch.setattr(subprocess.Popen, "communicate", interrupted)
    code = "import time; time.sleep(60)"
    with pytest.raises(KeyboardInterrupt):
        run_to_end([sys.executable, "-c", code], dict(os.environ), tmp_path, timeout_s=60.0)
    _assert_gone(pids[0])


def _assert_gone(pid: int) -> None:
    """The process was killed and reaped: its PID names no process of ours any more."""
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


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
    with pytest.raises(MicroBenchmarkError, match="micro benchmarks failed in process 0") as err:
        run_micro(tmp_path / "none.json", quick=True, keyword="no_such_benchmark_anywhere",
                  processes=2)  # fmt: skip
    assert err.value.table.empty


def test_a_table_without_processes_reads_as_one_process() -> None:
    stats = {"median": 1.0, "mean": 1.0, "stddev": 0.1, "iqr": 0.1, "min": 0.9, "rounds": 9}
    row = {"operation": "wait", "ready": "one", "n_registered": 16, "stats_us": stats}
    info = {"mechanism": "epoll", "n_registered": 16, "rows": [row]}
    df = micro_table_from_json({"benchmarks": [{"name": "x", "extra_info": info}]})
    assert df[PROCESS].isna().all() and len(df) == 1


def test_a_run_keeps_the_micro_rows_measured_before_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace

    from bench.measure import run as run_module

    kept = micro_table_from_json({"benchmarks": []})
    kept.loc[0, ["operation", "mechanism", "n_registered", "ready", PROCESS, "median_us"]] = [
        "wait", "epoll", 16, "one", 0, 1.0,
    ]  # fmt: skip

    def measure(settings, cfg, raw_dir):
        raise MicroBenchmarkError("micro benchmarks failed in process 1", kept)

    scenario = SimpleNamespace(measure_in_process=measure, summary="stub")
    monkeypatch.setattr(run_module.scenarios, "get", lambda name: scenario)
    written: dict[str, object] = {}
    warnings: list[str] = []
    sink = SimpleNamespace(
        raw_dir=Path("/nonexistent"), write_table=written.__setitem__,
        add_warning=warnings.append,
    )  # fmt: skip
    progress = SimpleNamespace(note=lambda message: None)
    cfg = SimpleNamespace(scenarios=("micro",), settings={"micro": None})
    run_module.run_in_process(cfg, sink, progress)
    assert written["micro"] is kept
    assert warnings == ["micro benchmarks failed: micro benchmarks failed in process 1"]
