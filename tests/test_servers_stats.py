"""The server's own counters agree with what the test sent and received (issue 2), and the
control channel answers the keys docs/architecture.md promises."""

from __future__ import annotations

import json
import os
import socket

import pytest
from test_servers_support import (
    WAIT_INSTRUMENTED_BACKENDS,
    HttpClient,
    assert_echo,
    assert_hello,
    backend_params,
    connect,
    http_request,
    wait_for_stats,
    wait_idle,
)

INT_KEYS = (
    "time_ns",
    "wait_calls",
    "wait_ns",
    "wait_events",
    "loop_iterations",
    "accepted",
    "closed",
    "current_connections",
    "peak_connections",
    "requests",
    "bytes_in",
    "bytes_out",
    "rejected_fd_setsize",
    "accept_emfile",
    "errors",
    "registered_fds",
    "pid",
)
FLOAT_KEYS = ("cpu_user_s", "cpu_system_s")
CONNECTIONS = 5


def _delta(after: dict, before: dict, key: str) -> int:
    return after[key] - before[key]


@pytest.mark.parametrize("backend", backend_params())
def test_stats_keys_and_types(start_server, backend: str) -> None:
    srv = start_server(backend, "http")
    stats = srv.stats()
    for key in INT_KEYS:
        assert type(stats[key]) is int, f"{key}={stats[key]!r} is not an int"
    for key in FLOAT_KEYS:
        assert isinstance(stats[key], float), f"{key}={stats[key]!r} is not a float"
    assert stats["backend"] == backend
    assert stats["protocol"] == "http"
    assert stats["pid"] == srv.pid
    assert stats["wait_instrumented"] is (backend in WAIT_INSTRUMENTED_BACKENDS)
    if not stats["wait_instrumented"]:
        assert stats["wait_calls"] == stats["wait_ns"] == stats["wait_events"] == 0, stats
    # The control channel itself is not a client connection.
    again = srv.stats()
    assert again["accepted"] == stats["accepted"]
    assert again["time_ns"] > stats["time_ns"]


@pytest.mark.parametrize("backend", backend_params())
def test_stats_match_http_traffic(start_server, backend: str) -> None:
    srv = start_server(backend, "http")
    before = wait_idle(srv)
    bytes_sent = bytes_received = requests = 0
    clients = [HttpClient(srv.port) for _ in range(CONNECTIONS)]
    try:
        during = wait_for_stats(
            srv,
            lambda s: s["current_connections"] == CONNECTIONS,
            what=f"current_connections == {CONNECTIONS}",
        )
        assert during["peak_connections"] >= CONNECTIONS
        for i, client in enumerate(clients):
            for _ in range(i + 1):
                req = http_request(path=f"/item/{i}")
                client.send(req)
                resp = client.read_response()
                assert_hello(resp)
                bytes_sent += len(req)
                bytes_received += len(resp.raw)
                requests += 1
    finally:
        for client in clients:
            client.close()
    after = wait_idle(srv)
    assert _delta(after, before, "accepted") == CONNECTIONS, (before, after)
    assert _delta(after, before, "closed") == CONNECTIONS, (before, after)
    assert _delta(after, before, "requests") == requests, (before, after)
    assert _delta(after, before, "bytes_in") == bytes_sent, (before, after)
    assert _delta(after, before, "bytes_out") == bytes_received, (before, after)
    assert _delta(after, before, "rejected_fd_setsize") == 0
    if after["wait_instrumented"]:
        assert _delta(after, before, "wait_calls") > 0
        assert _delta(after, before, "wait_events") >= requests
        assert _delta(after, before, "wait_ns") > 0
        assert _delta(after, before, "loop_iterations") > 0


@pytest.mark.parametrize("backend", backend_params())
def test_stats_match_echo_traffic(start_server, backend: str) -> None:
    srv = start_server(backend, "echo")
    before = wait_idle(srv)
    sizes_b = (1, 1000, 70_000, 300_000, 5)
    with connect(srv.port) as first, connect(srv.port) as second:
        wait_for_stats(srv, lambda s: s["current_connections"] == 2, what="2 connections")
        for size in sizes_b:
            assert_echo(first, os.urandom(size))
            assert_echo(second, os.urandom(size))
    after = wait_idle(srv)
    total_b = 2 * sum(sizes_b)
    assert _delta(after, before, "accepted") == 2
    assert _delta(after, before, "closed") == 2
    assert _delta(after, before, "bytes_in") == total_b, (before, after)
    assert _delta(after, before, "bytes_out") == total_b, (before, after)
    # Echo "requests" are reads served: at least one per message, at most one per byte.
    assert 2 * len(sizes_b) <= _delta(after, before, "requests") <= total_b


@pytest.mark.parametrize("backend", backend_params(["epoll", "threads"]))
def test_control_channel_speaks_one_json_line_then_eof(start_server, backend: str) -> None:
    """The harness reads stats with a plain socket; no client library is needed."""
    srv = start_server(backend, "echo")
    with socket.create_connection(("127.0.0.1", srv.control_port), timeout=10) as sock:
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.endswith(b"\n") and data.count(b"\n") == 1, data
    stats = json.loads(data)
    assert stats["pid"] == srv.pid
    assert set(INT_KEYS) <= set(stats)
