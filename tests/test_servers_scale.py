"""Many concurrent connections: 2,000 all served at once by every backend that can hold them,
and select's FD_SETSIZE wall (fds >= 1024 closed right after accept, counted, others served)."""

from __future__ import annotations

import os

import pytest
from test_servers_support import (
    HttpClient,
    assert_serves,
    backend_params,
    close_all,
    exchange_all,
    http_request,
    open_many,
    wait_for_stats,
    wait_idle,
)

from servers import registry
from servers.limits import FD_SETSIZE

CONCURRENT_CONNECTIONS = 2000
# Connections aimed at the select server: enough to cross FD_SETSIZE by a clear margin.
SELECT_ATTEMPTED_CONNECTIONS = 1200
# The select server itself holds a few descriptors (stdio, listener, control channel,
# a reserve fd...), so slightly fewer than 1024 clients fit; far fewer means a bug.
SELECT_MIN_SERVED = FD_SETSIZE - 64


def _reference_http_answer(port: int) -> bytes:
    with HttpClient(port) as client:
        client.send(http_request())
        return client.read_response().raw


def _check_fd_budget(needed: int) -> None:
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed + 100:
        pytest.skip(f"RLIMIT_NOFILE soft limit {soft} < {needed + 100}: run `ulimit -n 8192` first")


@pytest.mark.parametrize(
    "backend",
    # Every backend without a descriptor-number limit (the registry's fd_number_limit).
    backend_params([b.name for b in registry.all_backends() if b.fd_number_limit is None]),
)
def test_2000_concurrent_http_connections_all_served(start_server, backend: str) -> None:
    """All 2,000 are open at once (the server counts them), then each gets its answer."""
    _check_fd_budget(CONCURRENT_CONNECTIONS)
    srv = start_server(backend, "http")
    expected = _reference_http_answer(srv.port)
    wait_idle(srv)
    socks = open_many(srv.port, CONCURRENT_CONNECTIONS)
    try:
        stats = wait_for_stats(
            srv,
            lambda s: s.current_connections == CONCURRENT_CONNECTIONS,
            timeout_s=30.0,
            what=f"current_connections == {CONCURRENT_CONNECTIONS}",
        )
        assert stats.peak_connections >= CONCURRENT_CONNECTIONS
        counts = exchange_all(socks, http_request(), expected)
        assert counts == {"served": CONCURRENT_CONNECTIONS, "closed": 0, "pending": 0}, counts
        # Served while all of them were still open.
        assert srv.stats().current_connections == CONCURRENT_CONNECTIONS
    finally:
        close_all(socks)
    wait_idle(srv, timeout_s=30.0)
    assert_serves(srv.port, "http")


@pytest.mark.parametrize("backend", backend_params(["epoll-et", "threads"]))
def test_2000_concurrent_echo_connections_all_served(start_server, backend: str) -> None:
    """The echo path at 2,000 connections, for the edge-triggered and the threaded server."""
    _check_fd_budget(CONCURRENT_CONNECTIONS)
    srv = start_server(backend, "echo")
    socks = open_many(srv.port, CONCURRENT_CONNECTIONS)
    try:
        wait_for_stats(
            srv,
            lambda s: s.current_connections == CONCURRENT_CONNECTIONS,
            timeout_s=30.0,
            what=f"current_connections == {CONCURRENT_CONNECTIONS}",
        )
        payload = os.urandom(3000)
        counts = exchange_all(socks, payload, payload)
        assert counts == {"served": CONCURRENT_CONNECTIONS, "closed": 0, "pending": 0}, counts
    finally:
        close_all(socks)
    wait_idle(srv, timeout_s=30.0)


@pytest.mark.parametrize("protocol", ["http", "echo"])
def test_select_rejects_fds_past_fd_setsize_and_serves_the_rest(
    start_server, protocol: str
) -> None:
    """What a client of the select server sees past its wall: the connect succeeds, then the
    connection is closed (EOF or reset) without an answer. The others are all served."""
    _check_fd_budget(SELECT_ATTEMPTED_CONNECTIONS)
    srv = start_server("select", protocol)
    if protocol == "http":
        request = http_request()
        expected = _reference_http_answer(srv.port)
    else:
        request = expected = os.urandom(512)
    wait_idle(srv)
    base = srv.stats()
    socks = open_many(srv.port, SELECT_ATTEMPTED_CONNECTIONS)
    try:
        # Every connection has been either kept or rejected by the server.
        stats = wait_for_stats(
            srv,
            lambda s: (
                s.current_connections + s.rejected_fd_setsize - base.rejected_fd_setsize
                == SELECT_ATTEMPTED_CONNECTIONS
            ),
            timeout_s=30.0,
            what="current_connections + rejected_fd_setsize == attempted",
        )
        held = stats.current_connections
        rejected = stats.rejected_fd_setsize - base.rejected_fd_setsize
        assert rejected >= SELECT_ATTEMPTED_CONNECTIONS - FD_SETSIZE, stats
        assert SELECT_MIN_SERVED <= held < FD_SETSIZE, stats
        counts = exchange_all(socks, request, expected)
        assert counts == {"served": held, "closed": rejected, "pending": 0}, (counts, stats)
        assert srv.is_alive()
        assert srv.stats().current_connections == held
    finally:
        close_all(socks)
    wait_idle(srv, timeout_s=30.0)
    # With the descriptors freed, new clients get low fds again and are served.
    assert_serves(srv.port, protocol)
    stats = srv.stats()
    assert stats.rejected_fd_setsize - base.rejected_fd_setsize == rejected
