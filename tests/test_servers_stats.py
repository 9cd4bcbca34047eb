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

from servers.stats import StatsSnapshot

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


@pytest.mark.parametrize("backend", backend_params())
def test_stats_keys_and_types(start_server, backend: str) -> None:
    srv = start_server(backend, "http")
    stats = srv.stats()
    doc = stats.as_dict()
    for key in INT_KEYS:
        assert type(doc[key]) is int, f"{key}={doc[key]!r} is not an int"
    for key in FLOAT_KEYS:
        assert isinstance(doc[key], float), f"{key}={doc[key]!r} is not a float"
    assert stats.backend == backend
    assert stats.protocol == "http"
    assert stats.pid == srv.pid
    assert stats.wait_instrumented is (backend in WAIT_INSTRUMENTED_BACKENDS)
    if not stats.wait_instrumented:
        assert stats.wait_calls == stats.wait_ns == stats.wait_events == 0, stats
    # The control channel itself is not a client connection.
    again = srv.stats()
    assert again.accepted == stats.accepted
    assert again.time_ns > stats.time_ns


@pytest.mark.parametrize("backend", backend_params())
def test_stats_match_http_traffic(start_server, backend: str) -> None:
    srv = start_server(backend, "http")
    before = wait_idle(srv)
    bytes_sent = bytes_received = requests = 0
    clients = [HttpClient(srv.port) for _ in range(CONNECTIONS)]
    try:
        during = wait_for_stats(
            srv,
            lambda s: s.current_connections == CONNECTIONS,
            what=f"current_connections == {CONNECTIONS}",
        )
        assert during.peak_connections >= CONNECTIONS
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
    window = before.delta(after)
    assert window.accepted == CONNECTIONS, window
    assert window.closed == CONNECTIONS, window
    assert window.requests == requests, window
    assert window.bytes_in == bytes_sent, window
    assert window.bytes_out == bytes_received, window
    assert window.rejected_fd_setsize == 0
    assert window.start_current_connections == window.current_connections == 0, window
    assert window.window_ns > 0 and window.cpu_s >= 0, window
    if window.wait_instrumented:
        assert window.wait_calls > 0
        assert window.wait_events >= requests
        assert window.wait_ns > 0
        assert window.loop_iterations > 0


@pytest.mark.parametrize("backend", backend_params())
def test_stats_match_echo_traffic(start_server, backend: str) -> None:
    srv = start_server(backend, "echo")
    before = wait_idle(srv)
    sizes_b = (1, 1000, 70_000, 300_000, 5)
    with connect(srv.port) as first, connect(srv.port) as second:
        wait_for_stats(srv, lambda s: s.current_connections == 2, what="2 connections")
        for size in sizes_b:
            assert_echo(first, os.urandom(size))
            assert_echo(second, os.urandom(size))
    window = before.delta(wait_idle(srv))
    total_b = 2 * sum(sizes_b)
    assert window.accepted == 2
    assert window.closed == 2
    assert window.bytes_in == total_b, window
    assert window.bytes_out == total_b, window
    # Echo "requests" are reads served: at least one per message, at most one per byte.
    assert 2 * len(sizes_b) <= window.requests <= total_b


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
    assert StatsSnapshot.from_json(stats).pid == srv.pid
