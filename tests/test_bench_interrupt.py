"""Ctrl-C during ``bench run``: finished trials kept, run marked partial, no process left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from bench.store import schema
from bench.store.results import load

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _marked_processes(marker: str) -> list[psutil.Process]:
    """Every live process that inherited our marker in its environment."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("BENCH_TEST_MARKER") == marker and proc.status() != "zombie":
                found.append(proc)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def _wait_for_first_trial(out: Path, proc: subprocess.Popen[str], timeout_s: float) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "bench run ended before it could be interrupted"
        for run in out.iterdir():
            try:
                meta = json.loads((run / schema.RUN_JSON).read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if meta.get("cells_done", 0) >= 1:
                return run
        time.sleep(0.05)
    raise AssertionError("no trial finished in time")


def _wait_for_children(
    marker: str, proc: subprocess.Popen[str], timeout_s: float
) -> list[psutil.Process]:
    """The marked processes other than bench itself, once there is at least one."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "bench run ended before it could be interrupted"
        children = [p for p in _marked_processes(marker) if p.pid != proc.pid]
        if children:
            return children
        time.sleep(0.02)
    raise AssertionError("no server or load generator started after the first trial")


def test_sigint_keeps_finished_trials_marks_partial_and_ends_children(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    env = dict(os.environ, BENCH_TEST_MARKER=marker)
    argv = ["run", "--preset", "tiny", "--no-charts", "--out", str(tmp_path)]
    argv += ["--scenario", "idle-scaling,active-scaling"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell that starts the suite in the background (`cmd &`) leaves SIGINT
        # ignored, and children inherit that: restore the terminal's default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        run = _wait_for_first_trial(tmp_path, proc, timeout_s=90)
        # Land inside the next trial: wait until its server or load generator runs.
        children = _wait_for_children(marker, proc, timeout_s=60)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert len(children) >= 1
    # Children bench ended may still be exiting; wait for them, bounded.
    psutil.wait_procs(_marked_processes(marker), timeout=10)
    assert _marked_processes(marker) == [], "bench left processes behind after Ctrl-C"
    data = load(run)
    assert data.meta["status"] == "partial"
    assert data.meta["cells_done"] >= 1
    assert len(data.trials) == data.meta["cells_done"]
    assert (data.trials["status"] == "ok").all()
    assert any("interrupted" in w for w in data.meta["warnings"])
