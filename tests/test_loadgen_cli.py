"""`python -m loadgen` as a user runs it: exit status, messages, SIGINT, JSON output."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from loadgen import SCHEMA_VERSION, LoadConfig
from loadgen.cli import parse_args

ROOT = Path(__file__).resolve().parent.parent


def loadgen_cli(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadgen", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def test_cli_nothing_listening_exits_nonzero_with_clear_message() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound but not listening: refused
        port = s.getsockname()[1]
        proc = loadgen_cli("--port", str(port), "--measure-s", "1", timeout_s=30)
    assert proc.returncode == 1
    assert "nothing is listening" in proc.stderr
    assert "start the server" in proc.stderr
    assert proc.stdout == ""


def test_cli_refuses_non_loopback_without_allow_remote() -> None:
    proc = loadgen_cli("--host", "192.0.2.1", "--port", "80", timeout_s=30)
    assert proc.returncode == 1
    assert "not a loopback address" in proc.stderr
    assert "--allow-remote" in proc.stderr


def test_cli_rejects_open_loop_without_rate() -> None:
    proc = loadgen_cli("--port", "80", "--mode", "open", timeout_s=30)
    assert proc.returncode == 1
    assert "--rate-rps" in proc.stderr


@pytest.mark.slow  # about a second: the full suite runs it, the fast tier does not
def test_cli_writes_json_and_summary(start_server: Any, tmp_path: Path) -> None:
    srv = start_server("epoll", "echo")
    out = tmp_path / "r.json"
    proc = loadgen_cli(
        "--port", str(srv.port), "--protocol", "echo", "--active-connections", "4",
        "--idle-connections", "10", "--measure-s", "0.5", "--warmup-s", "0.2", "--workers", "1",
        "--cpus", *[str(c) for c in sorted(os.sched_getaffinity(0))[:1]], "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["schema_version"] == SCHEMA_VERSION
    assert result["partial"] is False
    assert result["connections"]["idle_established"] == 10
    assert result["config"]["measure_s"] == 0.5
    assert result["config"]["cpus"] == sorted(os.sched_getaffinity(0))[:1]
    assert "req/s" in proc.stderr


def test_cli_flags_are_the_config_fields_with_their_docstrings() -> None:
    """The CLI is generated from LoadConfig: one flag per field, help from its docstring."""
    proc = loadgen_cli("--help", timeout_s=30)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())  # help is wrapped and boxed: compare words only
    for field in dataclasses.fields(LoadConfig):
        assert "--" + field.name.replace("_", "-") in text, field.name
    assert "The measured window, seconds" in text
    assert "--out" in text


def test_cli_parses_into_the_config_it_describes() -> None:
    args = parse_args(
        ["--port", "8080", "--mode", "open", "--rate-rps", "250", "--measure-s", "2",
         "--idle-connections", "100", "--new-connection-per-request", "--out", "r.json"]
    )  # fmt: skip
    assert args.load == LoadConfig(
        port=8080, mode="open", rate_rps=250.0, measure_s=2.0, idle_connections=100,
        new_connection_per_request=True,
    )  # fmt: skip
    assert args.out == Path("r.json")
    # Defaults are LoadConfig's own, not restated by the CLI.
    assert parse_args(["--port", "1"]).load == LoadConfig(port=1)


def test_cli_missing_port_is_a_usage_error() -> None:
    proc = loadgen_cli("--measure-s", "1", timeout_s=30)
    assert proc.returncode == 2
    assert "--port" in proc.stderr


@pytest.mark.slow  # a real load interrupted
def test_sigint_writes_partial_result_and_leaves_no_worker(
    start_server: Any, tmp_path: Path
) -> None:
    srv = start_server("epoll", "http")
    out = tmp_path / "partial.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "--port", str(srv.port), "--idle-connections", "20",
         "--measure-s", "60", "--warmup-s", "0", "--workers", "2", "--out", str(out)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        # A shell that starts the suite in the background (`cmd &`) leaves SIGINT
        # ignored, and children inherit that: restore the terminal's default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        # Wait until the run is measuring: with no warm-up, the first request the server
        # answers was sent inside the measured window.
        deadline = time.monotonic() + 30
        workers: list[int] = []
        measuring = False
        while time.monotonic() < deadline and not measuring:
            workers = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
            measuring = len(workers) == 2 and srv.stats().requests > 0
            time.sleep(0.05)
        assert measuring, "the load generator never started measuring"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "partial" in stderr
    for pid in workers:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    result = json.loads(out.read_text())
    assert result["partial"] is True
    assert result["interrupted"] is True
    assert result["requests_total"] > 0
    # The window was cut short by the interrupt: measured, but less than asked for.
    assert 0 < result["measured_duration_s"] < result["config"]["measure_s"]
    assert result["connections"]["idle_established"] == 20
