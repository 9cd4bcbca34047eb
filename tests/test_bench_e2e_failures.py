"""A server that dies mid-trial is a failed trial with its reason, and the run goes on."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from bench.measure import protocol as runner
from bench.measure.config import build_config
from bench.present.progress import RunProgress
from bench.store.results import load
from bench.measure.plan import plan_trials

pytestmark = pytest.mark.slow


def _kill_server_at_first_window(monkeypatch: pytest.MonkeyPatch, trials_to_kill: int) -> None:
    """SIGKILL the server when the first measured window of a trial opens."""
    real_snapshot = runner._snapshot
    killed: list[int] = []

    def snapshot(server: Any, proc: Any) -> dict[str, Any]:
        if len(killed) < trials_to_kill and server.pid not in killed:
            killed.append(server.pid)
            os.kill(server.pid, signal.SIGKILL)
            server.popen.wait(timeout=5)
        return real_snapshot(server, proc)

    monkeypatch.setattr(runner, "_snapshot", snapshot)


def test_a_crashed_server_fails_its_trial_and_the_run_continues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = build_config(
        "tiny", scenarios=("active-scaling",), backends=("epoll", "poll"), out_dir=str(tmp_path)
    )
    trials = plan_trials(cfg)
    assert len(trials) == 2
    _kill_server_at_first_window(monkeypatch, trials_to_kill=1)
    outcome = runner.run_benchmark(cfg, trials, RunProgress(trials), warnings=[])
    assert outcome.status == "complete" and outcome.failed == 1
    data = load(outcome.path)
    first, second = data.trials.iloc[0], data.trials.iloc[1]
    assert first["status"] == "failed"
    assert "server process exited during the trial" in first["failure_reason"]
    assert bool(first["flagged"])
    assert second["status"] == "ok" and second["requests"] > 0
    assert data.meta["status"] == "complete"
