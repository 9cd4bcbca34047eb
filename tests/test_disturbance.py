"""Disturbance within a trial: other processes' CPU time on the server's and the load's CPUs.

The share is checked on synthetic /proc/stat readings with a known answer; the
flag and the verdict's exclusion on a table; and end to end, a CPU hog pinned to
the server's CPU during a tiny trial gets that trial flagged as disturbed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from bench import metrics
from bench.analyse.flags import data_quality, disturbed, fault_mask, left_out_count
from bench.analyse.rules import DISTURBED_SHARE_MAX, RULES
from bench.measure.machine.disturbance import disturbed_reason, foreign_cpu_columns, foreign_share
from bench.measure.machine.proc_stat import parse_proc_stat
from bench.measure.placement import Edge, LocalPlacement, ProcessCpu
from loadgen import LoadConfig

SERVER = metrics.FOREIGN_CPU_SHARE_SERVER.name
LOAD = metrics.FOREIGN_CPU_SHARE_LOAD.name
TICKS = 100


def _proc_stat(cpu0: tuple[int, int], cpu1: tuple[int, int]) -> str:
    """/proc/stat with per-CPU idle and softirq ticks (the other fields fixed)."""
    lines = ["cpu  1 1 1 1 1 1 1 1 0 0"]
    for n, (idle, softirq) in enumerate((cpu0, cpu1)):
        lines.append(f"cpu{n} 7 0 3 {idle} 10 700 {softirq} 2 0 0")
    return "\n".join([*lines, "intr 1 2", "ctxt 3", ""])


def test_per_cpu_untasked_time_is_idle_iowait_irq_softirq_and_steal() -> None:
    cpu = parse_proc_stat(_proc_stat((5000, 900), (100, 0)), TICKS)
    assert cpu is not None
    assert cpu.untasked_s_by_cpu == {0: pytest.approx(66.12), 1: pytest.approx(8.12)}


def test_the_share_is_what_tasks_ran_less_the_trials_own() -> None:
    start = parse_proc_stat(_proc_stat((5000, 900), (2000, 0)), TICKS)
    # 1 s window: CPU 0 idle 0 ticks (tasks ran 1.0 s), CPU 1 idle 50 ticks (0.5 s).
    end = parse_proc_stat(_proc_stat((5000, 900), (2050, 0)), TICKS)
    # The server ran 0.7 s of it on CPU 0: 0.3 s was someone else's.
    assert foreign_share(start, end, [0], own_s=0.7, window_s=1.0) == pytest.approx(0.3)
    # Over both CPUs: 1.5 s of tasks, 1.2 s own, over 2 CPU-seconds.
    assert foreign_share(start, end, [0, 1], own_s=1.2, window_s=1.0) == pytest.approx(0.15)
    # Own time read finer than the ticks may exceed them: never below zero.
    assert foreign_share(start, end, [1], own_s=0.52, window_s=1.0) == 0.0
    # Softirq (the trial's own packets) is no task's time.
    busy_irq = parse_proc_stat(_proc_stat((5000, 960), (2050, 0)), TICKS)
    assert foreign_share(start, busy_irq, [0], own_s=0.4, window_s=1.0) == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("cpus", "own_s", "window_s"),
    [([], 0.1, 1.0), ([7], 0.1, 1.0), ([0], None, 1.0), ([0], 0.1, 0.0)],
)
def test_no_share_without_its_readings(
    cpus: list[int], own_s: float | None, window_s: float
) -> None:
    reading = parse_proc_stat(_proc_stat((1, 1), (1, 1)), TICKS)
    assert foreign_share(reading, reading, cpus, own_s, window_s) is None
    assert foreign_share(None, reading, [0], 0.1, 1.0) is None


def _edge(at_s: float, stat: str, server_cpu_ns: int, reader_s: float) -> Edge:
    process = ProcessCpu(0.0, 0.0, 0, 0, cpu_ns_schedstat=server_cpu_ns)
    machine = parse_proc_stat(stat, TICKS)
    return Edge("t", at_s, None, None, process, None, machine, reader_s)


def _result(worker_cpu_s: list[float]) -> Any:
    """What foreign_cpu_columns reads of a LoadResult: its workers' window CPU."""
    workers = [SimpleNamespace(cpu_user_s=s * 0.75, cpu_system_s=s * 0.25) for s in worker_cpu_s]
    return SimpleNamespace(workers=workers)


def test_columns_split_the_server_cpu_from_the_load_cpus() -> None:
    start = _edge(10.0, _proc_stat((100, 0), (100, 0)), 0, 1.00)
    # 0.5 s window. CPU 0: never idle, tasks ran 0.5 s, the server's 0.2 s. CPU 1:
    # idle 10 ticks, tasks ran 0.4 s, the worker's 0.3 s and bench's 0.05 s.
    end = _edge(10.5, _proc_stat((100, 0), (110, 0)), 200_000_000, 1.05)
    cols = foreign_cpu_columns(start, end, _result([0.3]), 0, [1], across_hosts=False)
    assert cols[SERVER] == pytest.approx(0.6)  # (0.5 - 0.2) / 0.5
    assert cols[LOAD] == pytest.approx(0.1)  # (0.4 - 0.35) / 0.5
    assert disturbed_reason(cols) == "disturbed(server 0.60, load 0.10)"
    shared = foreign_cpu_columns(start, end, _result([0.3]), 1, [1], across_hosts=False)
    # One CPU (1) for both: 0.4 s charged there, 0.55 s own (server, worker, bench).
    assert shared[SERVER] == shared[LOAD] == 0.0
    placed = foreign_cpu_columns(start, end, _result([0.3]), None, [1], across_hosts=True)
    assert placed == {SERVER: None, LOAD: None}


def test_the_bound_decides_the_flag() -> None:
    assert disturbed_reason({SERVER: DISTURBED_SHARE_MAX, LOAD: 0.0}) is None
    assert disturbed_reason({SERVER: None, LOAD: None}) is None
    assert disturbed_reason({SERVER: None, LOAD: 0.2}) == "disturbed(load 0.20)"
    assert f"{DISTURBED_SHARE_MAX:.0%}" in RULES["disturbed"]


def test_the_verdict_leaves_disturbed_trials_out_and_the_count_says_so() -> None:
    trials = pd.DataFrame(
        {
            "status": ["ok", "ok", "ok", "failed", "ok"],
            "flagged": [False, False, True, False, False],
            "flag_reasons": ["", "", "errors(3)", "", ""],
            # A table written by another runner: the column, not the runner's flag, decides.
            SERVER: [0.01, 0.3, 0.0, 0.9, None],
            LOAD: [0.02, 0.0, 0.0, 0.0, 0.25],
            "mode": ["closed"] * 5,
        }
    )
    assert list(disturbed(trials)) == [False, True, False, True, True]
    assert list(fault_mask(trials)) == [False, True, True, True, True]
    assert left_out_count(trials) == 3  # the failed trial is counted as failed, not here
    quality = data_quality(trials)["disturbed"]
    assert quality["recorded"] and quality["trials"] == 2


@pytest.mark.slow  # a real trial beside a CPU hog
def test_a_hog_on_the_server_cpu_flags_its_trial_disturbed(tmp_path: Path) -> None:
    from bench.measure.config import build_config
    from bench.measure.machine import git_state, machine_metadata
    from bench.measure.plan import plan_trials
    from bench.measure.run import run_benchmark
    from bench.present.progress import RunProgress
    from bench.store.results import create_run, load

    cfg = build_config(
        "tiny", scenarios=("active-scaling",), backends=("epoll", "select"), out_dir=str(tmp_path)
    )
    if cfg.server_cpu in cfg.loadgen_cpus:
        pytest.skip("one CPU: the server and the load generator share it")
    hogged: list[int] = []

    class HogOnServerCpu(LocalPlacement):
        """The first trial's load runs beside a busy loop pinned to the server's CPU."""

        def run_load(self, config: LoadConfig, start: Any, end: Any) -> dict[str, Any]:
            if hogged:
                return super().run_load(config, start, end)
            hog = subprocess.Popen(
                [sys.executable, "-c", "print('spinning', flush=True)\nwhile True: pass"],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                os.sched_setaffinity(hog.pid, {cfg.server_cpu})
                assert hog.stdout is not None and hog.stdout.readline() == "spinning\n"
                hogged.append(hog.pid)
                return super().run_load(config, start, end)
            finally:
                hog.kill()  # by its PID
                hog.wait()

    trials = plan_trials(cfg)
    sink = create_run(cfg.out_dir, cfg.preset, cfg.to_dict(), machine_metadata(), git_state())
    outcome = run_benchmark(cfg, trials, sink, RunProgress(trials), HogOnServerCpu())
    first = load(outcome.path).trials.sort_values("order_index").iloc[0]
    assert hogged and first["status"] == "ok", first["failure_reason"]
    assert first[SERVER] > DISTURBED_SHARE_MAX
    assert bool(first["flagged"]) and "disturbed(" in first["flag_reasons"]
