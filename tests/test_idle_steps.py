"""idle-steps: one server process at every idle count in turn, the process as the fit's block."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.analyse import idle_steps
from bench.analyse.claim3 import claim3_family
from bench.analyse.families import roles_of
from bench.analyse.rules import CLAIM3_WAIT_LABEL, INCONCLUSIVE
from bench.analyse.simulate import SimulationSpec, Simulator
from bench.measure.config import preset_config
from bench.measure.machine.disturbance import DISTURBED
from bench.measure.plan import plan_trials
from bench.measure.scenarios.idle_steps import NAME, STEPS_COLUMN, IdleStepsSettings
from servers import registry

COUNTS = (0, 1000, 4000)


def _trial(order_index: int, backend: str, windows: list[dict], status: str = "ok") -> dict:
    return {
        "scenario": NAME, "backend": backend, "mode": "closed", "status": status,
        "flagged": False, "repetition": order_index // 2, "order_index": order_index,
        STEPS_COLUMN: json.dumps(windows),
    }  # fmt: skip


def _table(rng: np.random.Generator, growth: float, processes: int = 6) -> pd.DataFrame:
    """Processes that differ by x2 between them, each seeing ``growth`` over 0-4,000 idle."""
    rows = []
    for p in range(processes):
        level = 3.0 * np.exp(rng.normal(0, 0.7))  # a process's own level: it cancels
        order = rng.permutation(len(COUNTS))
        windows = [
            {
                "idle_connections": COUNTS[k],
                "position": i,
                "server_wait_us_per_call": level
                * (1 + growth * COUNTS[k] / 4000)
                * np.exp(rng.normal(0, 0.02)),
                "server_cpu_us_per_req": 8.0,
                "server_busy_fraction": 0.98,
            }
            for i, k in enumerate(order)
        ]
        rows.append(_trial(p, "epoll", windows))
    return pd.DataFrame(rows)


def test_windows_expand_one_row_each_and_leave_failed_trials_out() -> None:
    table = _table(np.random.default_rng(1), 0.0, processes=3)
    table.loc[1, "status"] = "failed"
    windows = idle_steps.step_windows(table)
    assert len(windows) == 2 * len(COUNTS)
    assert set(windows["process"]) == {0, 2}
    assert sorted(windows["idle_connections"].unique()) == list(COUNTS)


@pytest.mark.parametrize("growth", [0.0, 0.5])
def test_the_fit_finds_the_growth_inside_processes_that_differ_twofold(growth: float) -> None:
    windows = idle_steps.step_windows(_table(np.random.default_rng(2), growth))
    fit = idle_steps.steps_fit(windows, "epoll", "server_wait_us_per_call")
    assert fit is not None and "one block per server process" in fit.method
    lo, hi = fit.rel_ci
    assert lo <= growth <= hi
    # Across processes the x2 spread would swamp it; inside them the interval is tight.
    assert hi - lo < 0.15
    assert fit.min_reps_per_level == 6


def _run_table(seed: int, status: str = "ok") -> pd.DataFrame:
    """A simulated run of the family whose idle-steps trials hold ``_table``'s processes."""
    rng = np.random.default_rng(seed)
    table = Simulator(registry.FAMILY_PYTHON_LOOP).table(SimulationSpec(), rng)
    steps = table.index[table["scenario"] == NAME]
    mine = _table(rng, 0.0, processes=len(steps))
    table.loc[steps, STEPS_COLUMN] = mine[STEPS_COLUMN].to_numpy()
    table.loc[steps, "status"] = status
    return table


def test_claim3_judges_epoll_on_idle_steps_when_the_plan_measured_it_there() -> None:
    roles = roles_of(registry.FAMILY_PYTHON_LOOP)
    block = claim3_family(_run_table(3), roles)
    wait = next(m for m in block["evidence"]["metrics"] if m["metric"] == CLAIM3_WAIT_LABEL)
    assert "idle-steps" in wait["conditions"]
    assert wait["backends"]["epoll"]["class"] == "flat"
    assert len(wait["process_ratios"]) == 6


def test_a_plan_with_idle_steps_never_falls_back_to_idle_scaling_for_epoll() -> None:
    # Every idle-steps trial failed: the metric has no epoll data, it does not switch.
    roles = roles_of(registry.FAMILY_PYTHON_LOOP)
    block = claim3_family(_run_table(4, status="failed"), roles)
    wait = next(m for m in block["evidence"]["metrics"] if m["metric"] == CLAIM3_WAIT_LABEL)
    assert wait["status"] == INCONCLUSIVE and "epoll" not in wait.get("backends", {})


def test_the_default_preset_measures_each_familys_epoll_in_two_processes_per_repetition() -> None:
    cfg = preset_config("quick").replace(order_seed=7)
    steps = [t for t in plan_trials(cfg) if t.scenario == NAME]
    per_backend = pd.Series([t.backend for t in steps]).value_counts().to_dict()
    processes = IdleStepsSettings().processes
    assert per_backend == {"epoll": processes * cfg.repetitions,
                           "c-epoll": processes * cfg.repetitions}  # fmt: skip


def test_a_saturated_load_generator_is_not_a_fault_in_idle_steps() -> None:
    # Dropping it would drop the fastest servers' processes: an exclusion by outcome.
    src = (Path(__file__).parent.parent / "bench/measure/scenarios/idle_steps.py").read_text()
    assert "r != LOADGEN_SATURATED" in src


@pytest.mark.slow
def test_a_tiny_run_holds_every_count_in_one_server_process(tmp_path: Path) -> None:
    out = tmp_path / "results"
    cmd = [
        sys.executable, "-m", "bench", "run", "--preset", "tiny", "--scenario", NAME,
        "--backend", "epoll", "--repetitions", "1", "--out", str(out), "--no-charts",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = list(out.iterdir())
    trials = pd.read_parquet(run / "trials.parquet")
    assert (trials["status"] == "ok").all()
    # Flagged for nothing of its own: "disturbed" says another process (another test on
    # this machine) used its CPUs, which says nothing about the steps it held.
    reasons = [str(text) for text in trials["flag_reasons"].fillna("")]
    own = [r for text in reasons for r in text.split(";") if r and not r.startswith(DISTURBED)]
    assert not own, reasons
    counts = (0, 20, 50)  # the tiny preset's
    for text in trials[STEPS_COLUMN]:
        windows = json.loads(text)
        assert sorted(w["idle_connections"] for w in windows) == sorted(counts)
        assert all(w["server_wait_us_per_call"] > 0 for w in windows)
        # The fit's covariates are measured in every window (bench.analyse.idle_steps).
        assert all(w["server_events_per_call"] >= 1 and w["requests"] > 0 for w in windows)
        assert all(w["server_wait_calls"] > 0 for w in windows)


def _batched_table(rng: np.random.Generator, growth: float, with_covariates: bool) -> pd.DataFrame:
    """Processes whose wait call moves with its batch and the machine's speed, as c-epoll's."""
    rows = []
    for p in range(6):
        level = 1.5 * np.exp(rng.normal(0, 0.5))
        windows = []
        for i, k in enumerate(rng.permutation(len(COUNTS))):
            events = float(np.exp(rng.uniform(np.log(1.1), np.log(7.0))))
            speed = float(np.exp(rng.normal(0, 0.15)))
            wait = level * (1 + growth * COUNTS[k] / 4000) * events**0.6 * speed
            wait *= float(np.exp(rng.normal(0, 0.02)))
            other = 4.0 * speed * float(np.exp(rng.normal(0, 0.02)))
            window = {
                "idle_connections": COUNTS[k], "position": i,
                "server_wait_us_per_call": wait, "server_cpu_us_per_req": other + wait / events,
                "server_busy_fraction": 0.98,
            }  # fmt: skip
            if with_covariates:
                window |= {"server_events_per_call": events,
                           "server_wait_calls": 100_000 / events, "requests": 100_000}  # fmt: skip
            windows.append(window)
        rows.append(_trial(p, "epoll", windows))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("growth", [0.0, 0.3])
def test_the_batch_and_the_machine_speed_are_covariates_of_the_wait_call(growth: float) -> None:
    table = _batched_table(np.random.default_rng(7), growth, with_covariates=True)
    fit = idle_steps.steps_fit(idle_steps.step_windows(table), "epoll", "server_wait_us_per_call")
    assert fit is not None and "log(events per call)" in fit.method
    lo, hi = fit.rel_ci
    assert lo <= growth <= hi and hi - lo < 0.1
    # Without them the same processes' batch and speed are noise.
    old = _batched_table(np.random.default_rng(7), growth, with_covariates=False)
    plain = idle_steps.steps_fit(idle_steps.step_windows(old), "epoll", "server_wait_us_per_call")
    assert plain is not None and idle_steps.NO_COVARIATES in plain.method
    assert plain.rel_ci[1] - plain.rel_ci[0] > 2 * (hi - lo)


def test_cpu_per_request_is_fitted_without_the_covariates() -> None:
    table = _batched_table(np.random.default_rng(8), 0.0, with_covariates=True)
    fit = idle_steps.steps_fit(idle_steps.step_windows(table), "epoll", "server_cpu_us_per_req")
    assert fit is not None and fit.method == idle_steps.METHOD_STEPS


def test_one_window_without_covariates_fits_every_window_without_them() -> None:
    table = _batched_table(np.random.default_rng(9), 0.0, with_covariates=True)
    windows = json.loads(table.loc[2, STEPS_COLUMN])
    del windows[1]["server_events_per_call"]
    table.loc[2, STEPS_COLUMN] = json.dumps(windows)
    fit = idle_steps.steps_fit(idle_steps.step_windows(table), "epoll", "server_wait_us_per_call")
    assert fit is not None and idle_steps.NO_COVARIATES in fit.method
    assert fit.n_points == 18
