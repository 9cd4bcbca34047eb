"""Churn mode (new_connection_per_request) against the real reference servers.

Count-based only: every request is its own TCP connection, so the server's
``accepted`` delta must equal the connections the load generator opened (+1
for the precheck) and its ``requests`` delta the requests the load generator
completed. No speed assertions (the machine is shared and noisy).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from loadgen import LoadConfig, run_load
from loadgen.plan import CHURN_SOURCES, source_addresses
from loadgen.protocols import build_request
from servers.stats import StatsSnapshot

ROOT = Path(__file__).resolve().parent.parent


def settled_stats(srv: Any, timeout_s: float = 10.0) -> StatsSnapshot:
    """Server stats once every connection is closed (the totals are final then)."""
    deadline = time.monotonic() + timeout_s
    while True:
        stats = srv.stats()
        if stats.current_connections == 0 or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


def churn_config(port: int, protocol: str = "http", **kw: Any) -> LoadConfig:
    base: dict[str, Any] = {
        "port": port,
        "protocol": protocol,
        "active_connections": 8,
        "measure_s": 0.6,
        "warmup_s": 0.2,
        "workers": 1,
        "new_connection_per_request": True,
    }
    base.update(kw)
    return LoadConfig(**base)


def assert_exact_counts(
    result: dict[str, Any], before: StatsSnapshot, after: StatsSnapshot
) -> None:
    conns = result["connections"]
    assert result["partial"] is False
    assert result["errors_total"] == 0, result["error_samples"]
    assert sum(conns["connect_errors"].values()) == 0, conns["connect_errors"]
    assert result["requests"] > 0
    assert result["requests_total"] == after.requests - before.requests
    # One connection per request, plus the idle ones, plus the precheck.
    opened = conns["connections_opened"]
    assert opened == result["requests_total"] + conns["idle_established"]
    assert after.accepted - before.accepted == opened + conns["precheck_connections"]
    assert conns["new_connection_per_request"] is True


@pytest.mark.parametrize("http_close", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_closed_loop_http_churn_counts_match_server(
    start_server: Any, http_close: bool, loadgen_core: str
) -> None:
    srv = start_server("epoll", "http", http_close=http_close)
    before = srv.stats()
    result = run_load(churn_config(srv.port, workers=2))
    assert_exact_counts(result, before, settled_stats(srv))
    assert result["loadgen_core"] == loadgen_core
    # The server closing after its answer is the expected end, not an error.
    assert result["errors"]["unexpected_close"] == 0
    # Every connection went through a spread source address.
    assert len(result["source_addresses"]) == CHURN_SOURCES


@pytest.mark.slow  # about a second: the full suite runs it, the fast tier does not
def test_closed_loop_echo_churn_with_idle_connections(start_server: Any, loadgen_core: str) -> None:
    srv = start_server("epoll", "echo")
    before = srv.stats()
    result = run_load(churn_config(srv.port, "echo", idle_connections=20))
    after = settled_stats(srv)
    assert_exact_counts(result, before, after)
    assert result["connections"]["idle_established"] == 20
    assert result["connections"]["idle_alive_at_end"] == 20
    assert result["loadgen_core"] == loadgen_core


def test_open_loop_http_churn_counts_match_server(start_server: Any, loadgen_core: str) -> None:
    srv = start_server("epoll", "http", http_close=True)
    before = srv.stats()
    result = run_load(churn_config(srv.port, mode="open", rate_rps=500.0))
    assert_exact_counts(result, before, settled_stats(srv))
    assert result["requests_sent"] > 0
    # A send lag per request started in the window (from intended time to connect start).
    assert abs(result["send_lag_us"]["count"] - result["requests_sent"]) <= 8
    assert result["loadgen_core"] == loadgen_core


@pytest.mark.slow  # about a second: the full suite runs it, the fast tier does not
@pytest.mark.parametrize("backend", ["select", "poll"])
def test_churn_on_select_and_poll_backends(start_server: Any, backend: str) -> None:
    srv = start_server(backend, "http", http_close=True)
    before = srv.stats()
    result = run_load(churn_config(srv.port, active_connections=4, measure_s=0.4))
    assert_exact_counts(result, before, settled_stats(srv))


def test_churn_request_asks_for_close_and_keepalive_request_does_not() -> None:
    churn = build_request(LoadConfig(port=80, new_connection_per_request=True))
    plain = build_request(LoadConfig(port=80))
    assert b"\r\nConnection: close\r\n" in churn
    assert b"Connection:" not in plain
    assert churn.endswith(b"\r\n\r\n")


def test_churn_spreads_sources_only_on_ipv4_loopback() -> None:
    cfg = LoadConfig(port=80, new_connection_per_request=True)
    sources = source_addresses(cfg, "127.0.0.1", True)
    assert len(sources) == CHURN_SOURCES
    assert len(set(sources)) == CHURN_SOURCES
    assert source_addresses(cfg, "::1", True) == ()
    assert source_addresses(LoadConfig(port=80), "127.0.0.1", True) == ()


@pytest.mark.slow  # about a second: the full suite runs it, the fast tier does not
def test_cli_flag_new_connection_per_request(start_server: Any, tmp_path: Path) -> None:
    srv = start_server("epoll", "http", http_close=True)
    before = srv.stats()
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [
            sys.executable, "-m", "loadgen", "--port", str(srv.port), "--active-connections", "4",
            "--measure-s", "0.4", "--warmup-s", "0.1", "--workers", "1",
            "--new-connection-per-request", "--out", str(out),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["config"]["new_connection_per_request"] is True
    assert_exact_counts(result, before, settled_stats(srv))
