"""The load generator against the real reference servers (issue 3).

Count-based only: what the load generator says it did must equal what the
server counted. No speed assertions (the machine is shared and noisy).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fixtures.machine_share import machine_alone

from loadgen import (
    SCHEMA_VERSION,
    LoadConfig,
    LoadResult,
    SendLagSummary,
    TargetUnreachable,
    run_load,
)
from loadgen import histogram as hdr
from loadgen.core import CORE_ENV, POLL_ENV, load_core
from loadgen.protocols import build_request
from servers.stats import StatsSnapshot


def wait_connections_closed(srv: Any, timeout_s: float = 10.0) -> StatsSnapshot:
    """Server stats once every connection is closed (the totals are final then)."""
    deadline = time.monotonic() + timeout_s
    while True:
        stats = srv.stats()
        if stats.current_connections == 0 or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


def run_with_marks(
    cfg: LoadConfig, srv: Any, held_at_start: int | None = None
) -> tuple[dict[str, Any], dict[str, StatsSnapshot]]:
    """The load result and the server's stats at the window's edges.

    ``held_at_start``: the start mark waits (bounded) until the server holds that many
    connections: the clients' connects complete in the kernel before the server has
    accepted them all, and a busy server may still be accepting when the window opens.
    """
    marks: dict[str, StatsSnapshot] = {}

    def at_start() -> None:
        marks["start"] = srv.stats() if held_at_start is None else held(srv, held_at_start)

    result = run_load(
        cfg, on_measure_start=at_start, on_measure_end=lambda: marks.__setitem__("end", srv.stats())
    )
    return result, marks


def held(srv: Any, count: int, timeout_s: float = 30.0) -> StatsSnapshot:
    """Server stats once it holds ``count`` connections (the last stats if it never does)."""
    deadline = time.monotonic() + timeout_s
    while True:
        stats = srv.stats()
        if stats.current_connections >= count or time.monotonic() > deadline:
            return stats
        time.sleep(0.02)


@pytest.mark.parametrize("protocol", ["echo", "http"])
def test_closed_loop_count_equals_server_count(
    start_server: Any, protocol: str, loadgen_core: str
) -> None:
    srv = start_server("epoll", protocol)
    cfg = LoadConfig(
        port=srv.port,
        protocol=protocol,
        active_connections=8,
        idle_connections=20,
        measure_s=0.5,
        warmup_s=0.1,
        workers=2,
    )
    # Alone: it reads the workers' CPU accounting, and polling is timed on the wall
    # clock, so another worker's process on the same CPU makes it exceed the CPU time
    # (0.157 s polled against 0.13 s of CPU beside the other worker, sanitizer build).
    with machine_alone():
        result, marks = run_with_marks(cfg, srv)
    final = wait_connections_closed(srv)

    assert result["partial"] is False
    assert result["errors_total"] == 0, result["error_samples"]
    assert result["connections"]["active_established"] == 8
    assert result["requests"] > 0
    assert result["unanswered_at_end"] == 0
    assert result["reconnects"] == 0  # a keep-alive server never closes here
    # Whole run: every response the server sent was counted by the load generator.
    assert final.requests == result["requests_total"]
    assert (
        result["requests_total"]
        == result["warmup_requests"] + result["requests"] + result["drain_requests"]
    )
    # Every request byte the load generator sent arrived at the server.
    request_bytes = len(build_request(cfg))
    assert final.bytes_in == result["requests_total"] * request_bytes
    # Measured window: the server's delta between the two callbacks is the same
    # window up to the requests in flight at each edge (at most one per connection
    # per edge) plus the time the stats read itself takes; only a sanity bound here.
    delta = marks["end"].requests - marks["start"].requests
    assert delta > 0
    assert result["latency_us"]["corrected"] == result["latency_us"]["uncorrected"]
    assert result["latency_us"]["corrected"]["count"] == result["requests"]
    assert sum(p["requests"] for p in result["timeseries"]) == result["requests"]
    assert sum(w["requests"] for w in result["workers"]) == result["requests"]
    assert final.accepted == 8 + 20 + result["connections"]["precheck_connections"]
    assert result["loadgen_core"] == loadgen_core
    assert {w["core"] for w in result["workers"]} == {loadgen_core}
    _assert_polling_is_waiting(result, polls=loadgen_core == "c")


def _assert_polling_is_waiting(result: dict[str, Any], polls: bool) -> None:
    """The core polls for answers before blocking (loadgen.core.DEFAULT_POLL_NS), the
    Python loop never; the busy fraction is the work, the CPU time less the polling."""
    workers = result["workers"]
    polled = [w["polled_s"] for w in workers]
    assert all(p > 0 for p in polled) if polls else polled == [0.0] * len(workers), polled
    for w in workers:
        cpu_s = w["cpu_user_s"] + w["cpu_system_s"]
        assert 0 <= w["polled_s"] <= cpu_s + 0.01, w  # read 1-2 ms apart from the CPU times
        work = max(cpu_s - w["polled_s"], 0.0) / result["measured_duration_s"]
        assert w["busy_fraction"] == pytest.approx(work, abs=1e-3), w


def test_with_the_poll_off_the_core_blocks_at_once(
    start_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if load_core() is None:
        pytest.skip("loadgen._cload is not built (python setup.py build_ext --inplace)")
    monkeypatch.setenv(CORE_ENV, "c")
    monkeypatch.setenv(POLL_ENV, "0")  # read by the workers
    srv = start_server("epoll", "http")
    cfg = LoadConfig(port=srv.port, active_connections=4, measure_s=0.3, warmup_s=0.1, workers=1)
    result = run_load(cfg)
    assert result["errors_total"] == 0 and result["requests"] > 0
    _assert_polling_is_waiting(result, polls=False)


@pytest.mark.slow  # about a second: the full suite runs it, the fast tier does not
def test_large_echo_requests_are_written_and_read_whole(
    start_server: Any, loadgen_core: str
) -> None:
    """A request larger than the socket buffer is written in parts (EPOLLOUT) and its
    answer read in parts; every byte arrives once."""
    srv = start_server("epoll", "echo")
    cfg = LoadConfig(port=srv.port, protocol="echo", payload_bytes=1 << 20, active_connections=2,
                     measure_s=0.5, warmup_s=0.1, workers=1)  # fmt: skip
    result = run_load(cfg)
    final = wait_connections_closed(srv)
    assert result["errors_total"] == 0, result["error_samples"]
    assert result["requests"] > 0 and result["unanswered_at_end"] == 0
    assert final.bytes_in == result["requests_total"] * cfg.payload_bytes
    assert result["loadgen_core"] == loadgen_core


@pytest.mark.slow  # about a second: the full suite runs it, the fast tier does not
def test_from_dict_types_the_document_as_written(start_server: Any) -> None:
    srv = start_server("epoll", "http")
    cfg = LoadConfig(port=srv.port, active_connections=4, idle_connections=3, measure_s=0.5,
                     warmup_s=0.1, workers=1)  # fmt: skip
    doc = run_load(cfg)
    # Through JSON, as bench stores it and reads it back.
    typed = LoadResult.from_dict(json.loads(json.dumps(doc)))
    assert isinstance(typed, LoadResult)
    assert doc["schema_version"] == SCHEMA_VERSION
    assert typed.partial is False and typed.partial_reason is None
    assert typed.requests == doc["requests"] > 0
    assert typed.throughput_rps == doc["throughput_rps"]
    assert typed.latency_corrected.p99 == doc["latency_us"]["corrected"]["p99"]
    assert typed.latency_corrected.count == typed.requests
    assert typed.latency_uncorrected == typed.latency_corrected  # closed loop
    assert typed.send_lag_us == SendLagSummary(p50=None, p99=None, max=None, count=0)
    assert typed.histogram_send_lag is None  # no intended send times in closed loop
    assert typed.release_timeouts == 0
    assert typed.connections.established == 7 == typed.connections.requested
    assert typed.connections.connect_errors_total == 0
    assert typed.errors_total == 0 and sum(typed.errors.values()) == 0
    assert typed.achieved_rate_ratio is None
    assert typed.histogram_corrected == doc["histogram_corrected"]
    assert typed.config["measure_s"] == 0.5
    assert sum(p.requests for p in typed.timeseries) == typed.requests
    assert typed.placement is None  # one loadgen.run ran every worker
    assert typed.to_dict() == doc  # the document is what to_dict writes, key for key


@pytest.mark.slow  # 2 s of load
def test_open_loop_sends_rate_times_duration(start_server: Any, loadgen_core: str) -> None:
    srv = start_server("epoll", "http")
    rate, duration = 500.0, 2.0
    cfg = LoadConfig(
        port=srv.port,
        protocol="http",
        active_connections=8,
        mode="open",
        rate_rps=rate,
        measure_s=duration,
        warmup_s=0.5,
        workers=2,
    )
    result, _ = run_with_marks(cfg, srv)
    final = wait_connections_closed(srv)

    expected = rate * duration
    assert abs(result["requests_sent"] - expected) <= 0.05 * expected, result["requests_sent"]
    assert abs(result["requests"] - expected) <= 0.05 * expected
    assert result["requested_rate_rps"] == rate
    assert result["rate_shortfall"] is False
    assert result["errors_total"] == 0
    assert final.requests == result["requests_total"]
    # The schedule is the same for warm-up: rate x (warm-up + duration) in total.
    total_expected = rate * (duration + cfg.warmup_s)
    assert abs(result["requests_total"] - total_expected) <= 0.05 * total_expected
    corrected = result["latency_us"]["corrected"]
    uncorrected = result["latency_us"]["uncorrected"]
    assert corrected["count"] == uncorrected["count"] == result["requests"]
    # Latency from the intended send time is never shorter than from the actual send.
    assert corrected["max"] >= uncorrected["max"]
    assert corrected["mean"] >= uncorrected["mean"]
    # One send lag per request sent in the window (the edges may shift one per connection).
    lag = result["send_lag_us"]
    assert abs(lag["count"] - result["requests_sent"]) <= cfg.active_connections
    assert 0 <= lag["p50"] <= lag["p99"] <= lag["max"]
    typed = LoadResult.from_dict(result)
    assert typed.send_lag_us.count == lag["count"] and typed.send_lag_us.p99 == lag["p99"]
    assert hdr.decode(typed.histogram_send_lag).get_total_count() == lag["count"]
    assert result["loadgen_core"] == loadgen_core


@pytest.mark.slow  # about a second: the full suite runs it, the fast tier does not
def test_idle_connections_match_server_current_connections(start_server: Any) -> None:
    srv = start_server("epoll", "echo")
    cfg = LoadConfig(
        port=srv.port,
        protocol="echo",
        idle_connections=1000,
        active_connections=8,
        measure_s=0.5,
        warmup_s=0.3,
        workers=2,
    )
    result, marks = run_with_marks(cfg, srv, held_at_start=1008)
    conns = result["connections"]
    established = conns["idle_established"] + conns["active_established"]
    assert established == 1008
    assert marks["start"].current_connections == established
    assert marks["end"].current_connections == established
    assert conns["idle_alive_at_end"] == 1000
    assert result["errors_total"] == 0
    assert sum(conns["connect_errors"].values()) == 0
    assert wait_connections_closed(srv).current_connections == 0


# 1,008 connections, 1 s of warm-up and a held window, three times: seconds apiece.
@pytest.mark.slow
@pytest.mark.parametrize("repetition", range(3))
def test_window_holds_every_connection_until_released(start_server: Any, repetition: int) -> None:
    """The server's connection count at the end edge equals the start edge (issue 9).

    on_measure_end waits 0.3 s before reading the server, as a slow parent
    would: without the release, the workers would be closing connections by then.
    """
    srv = start_server("epoll", "http")
    marks: dict[str, StatsSnapshot] = {}

    def at_end() -> None:
        time.sleep(0.3)  # window: a slow parent, the case under test
        marks["end"] = srv.stats()

    cfg = LoadConfig(port=srv.port, idle_connections=1000, active_connections=8, measure_s=0.5,
                     warmup_s=1.0, workers=2)  # fmt: skip
    result = run_load(
        cfg, on_measure_start=lambda: marks.__setitem__("start", srv.stats()), on_measure_end=at_end
    )
    assert marks["start"].current_connections == 1008
    assert marks["end"].current_connections == marks["start"].current_connections
    assert result["release_timeouts"] == 0
    assert [w["release"] for w in result["workers"]] == ["parent", "parent"]
    assert result["errors_total"] == 0
    assert wait_connections_closed(srv).current_connections == 0


@pytest.mark.slow  # about a second: the full suite runs it, the fast tier does not
def test_hold_is_bounded_by_release_timeout(start_server: Any) -> None:
    """A parent that never releases: the workers close anyway and say so."""
    srv = start_server("epoll", "echo")
    seen: dict[str, int] = {}

    def at_end() -> None:  # blocks until the workers gave up holding (bounded)
        seen["end"] = srv.stats().current_connections
        seen["after"] = wait_connections_closed(srv).current_connections

    cfg = LoadConfig(port=srv.port, protocol="echo", idle_connections=10, active_connections=2,
                     measure_s=0.3, warmup_s=0.1, workers=1, release_timeout_s=0.5)  # fmt: skip
    result = run_load(cfg, on_measure_end=at_end)
    assert seen == {"end": 12, "after": 0}
    assert result["release_timeouts"] == 1
    assert result["workers"][0]["release"] == "timeout"
    assert result["partial"] is False


@pytest.mark.slow  # about a second: the full suite runs it, the fast tier does not
def test_idle_connection_closed_by_server_is_not_alive(start_server: Any) -> None:
    """Idle liveness is checked for real: a server that went away leaves none alive."""
    srv = start_server("epoll", "echo")
    cfg = LoadConfig(
        port=srv.port,
        protocol="echo",
        idle_connections=50,
        active_connections=2,
        measure_s=0.6,
        warmup_s=0.0,
        workers=1,
        request_timeout_s=1.0,
    )
    result = run_load(cfg, on_measure_start=srv.stop)
    assert result["connections"]["idle_established"] == 50
    assert result["connections"]["idle_alive_at_end"] == 0
    assert result["errors"]["unexpected_close"] == 2
    assert result["connections"]["active_alive_at_end"] == 0


def test_nothing_listening_raises_clear_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connect is refused
        with pytest.raises(TargetUnreachable, match="nothing is listening"):
            run_load(LoadConfig(port=port, measure_s=1.0, warmup_s=0.0))


@pytest.mark.slow  # connects at a limited rate
def test_rate_limited_connects_and_progress_reports(start_server: Any) -> None:
    srv = start_server("epoll", "echo")
    seen: list[dict[str, Any]] = []
    cfg = LoadConfig(
        port=srv.port,
        protocol="echo",
        idle_connections=200,
        active_connections=4,
        connect_rate=2_000.0,
        measure_s=1.0,
        warmup_s=0.0,
        workers=2,
    )
    result = run_load(cfg, progress=seen.append)
    conns = result["connections"]
    assert conns["idle_established"] + conns["active_established"] == 204
    # The phases are reported as they happen, in order, with the times the result records.
    order = ["connect_start", "connect_end", "warmup_start", "measure_start", "measure_end",
             "drain_end"]  # fmt: skip
    noted = [p["phase"] for p in seen if p["phase"] != "measure"]
    assert noted == order
    assert {p["phase"]: p["time"] for p in seen if p["phase"] != "measure"} == result["phases"]
    times = [result["phases"][phase] for phase in order]
    assert times == sorted(times)
    # The duration the rates are computed over is the recorded window.
    window = result["phases"]["measure_end"] - result["phases"]["measure_start"]
    assert result["measured_duration_s"] == pytest.approx(window, abs=2e-6)
    assert result["reconnect_rate_per_s"] == 0.0
    assert result["throughput_rps"] == pytest.approx(result["requests"] / window, rel=1e-4)


@pytest.mark.slow
def test_19000_connections_to_one_port(start_server: Any) -> None:
    """Beyond one source address's comfortable port range: spread over 127.0.0.2, .3, ..."""
    srv = start_server("epoll", "echo")
    cfg = LoadConfig(
        port=srv.port,
        protocol="echo",
        idle_connections=18_992,
        active_connections=8,
        measure_s=0.5,
        warmup_s=0.0,
        workers=2,
    )
    result, marks = run_with_marks(cfg, srv, held_at_start=19_000)
    conns = result["connections"]
    assert conns["idle_established"] + conns["active_established"] == 19_000
    assert len(result["source_addresses"]) >= 3
    assert marks["start"].current_connections == 19_000
    assert conns["idle_alive_at_end"] == 18_992
    assert result["errors_total"] == 0
    assert wait_connections_closed(srv, timeout_s=30).current_connections == 0
