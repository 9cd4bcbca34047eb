"""A backend and a scenario from a module outside the packages run through `bench run`.

The README's "Adding a backend" and "Adding a scenario" sections promise that
the registries are the only seam; this runs a toy of each end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PLUGIN_DIR = Path(__file__).resolve().parent / "plugins"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["SELECTBENCH_PLUGINS"] = "toy_plugin"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PLUGIN_DIR), str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
    )
    return env


@pytest.mark.slow
def test_toy_backend_and_scenario_run_through_bench(tmp_path: Path) -> None:
    cmd = [
        sys.executable, "-m", "bench", "run", "--preset", "tiny",
        "--scenario", "toy-pairs,idle-scaling", "--backend", "toy-selectors,epoll",
        "--out", str(tmp_path), "--no-charts",
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, env=_env(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (run,) = [p for p in tmp_path.iterdir() if (p / "run.json").is_file()]
    trials = pd.read_csv(run / "trials.csv")
    assert set(trials["scenario"]) == {"toy-pairs", "idle-scaling"}
    assert set(trials["backend"]) == {"toy-selectors", "epoll"}
    assert (trials["status"] == "ok").all(), trials[["scenario", "backend", "failure_reason"]]
    toy = trials[(trials["backend"] == "toy-selectors") & (trials["scenario"] == "toy-pairs")]
    assert int(toy["requests"].iloc[0]) > 0
    assert int(toy["server_wait_calls"].iloc[0]) > 0
    meta = json.loads((run / "run.json").read_text())
    assert "toy-pairs" in meta["config"]["settings"]


def test_toy_plugin_is_listed_in_bench_choices() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--help"],
        env=_env(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "toy-selectors" in proc.stdout and "toy-pairs" in proc.stdout
