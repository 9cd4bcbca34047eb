"""A server that dies mid-trial is a failed trial with its reason, and the run goes on."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.measure.config import build_config
from bench.measure.machine import git_state, machine_metadata
from bench.measure.placement import Edge, LocalPlacement, LocalServer, ServerHandle
from bench.measure.plan import plan_trials
from bench.measure.run import run_benchmark
from bench.present.progress import RunProgress
from bench.store.results import create_run, load
from servers.config import ServerConfig

pytestmark = pytest.mark.slow


class KillingPlacement(LocalPlacement):
    """This host, except that the first server is SIGKILLed when its window opens."""

    def __init__(self) -> None:
        self.killed: list[int] = []

    @contextlib.contextmanager
    def server(self, config: ServerConfig) -> Iterator[ServerHandle]:
        with super().server(config) as handle:
            assert isinstance(handle, LocalServer)
            placement = self
            real_edge = handle.edge

            def edge(*, with_process: bool = True) -> Edge:
                if not placement.killed:
                    placement.killed.append(handle.pid)
                    os.kill(handle.pid, signal.SIGKILL)
                    deadline = time.monotonic() + 5
                    while handle.exit_reason() is None and time.monotonic() < deadline:
                        time.sleep(0.01)
                return real_edge(with_process=with_process)

            handle.edge = edge  # type: ignore[method-assign]
            yield handle


def test_a_crashed_server_fails_its_trial_and_the_run_continues(tmp_path: Path) -> None:
    cfg = build_config(
        "tiny", scenarios=("active-scaling",), backends=("epoll", "poll"), out_dir=str(tmp_path)
    )
    trials = plan_trials(cfg)
    assert len(trials) == 2
    sink = create_run(cfg.out_dir, cfg.preset, cfg.to_dict(), machine_metadata(), git_state())
    placement = KillingPlacement()
    outcome = run_benchmark(cfg, trials, sink, RunProgress(trials), placement)
    assert len(placement.killed) == 1
    assert outcome.status == "complete" and outcome.failed == 1
    data = load(outcome.path)
    first, second = data.trials.iloc[0], data.trials.iloc[1]
    assert first["status"] == "failed"
    assert "server process exited during the trial" in first["failure_reason"]
    assert bool(first["flagged"])
    assert second["status"] == "ok" and second["requests"] > 0
    assert data.meta["status"] == "complete"
