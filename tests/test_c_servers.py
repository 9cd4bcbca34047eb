"""The C twins under the bad days of a server (issue 10, item 3), beyond the shared matrix of
tests/test_servers_*.py (which runs them too, through the registry): descriptor exhaustion
(EMFILE), select's FD_SETSIZE wall, slowloris, 8 MiB heads, reset storms and 19,000
connections on c-epoll, c-select-big and c-uring. After each the server is alive, not
spinning, and serves a fresh client. Deadlines are liveness bounds; nothing here asserts speed.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import threading
import time

import psutil
import pytest
from test_c_support import C_BACKENDS, open_many_from
from test_servers_support import (
    HEAD_CAP_BYTES,
    HttpClient,
    PeerClosed,
    assert_serves,
    close_all,
    connect,
    exchange_all,
    http_request,
    open_many,
    reset_close,
    wait_for_stats,
    wait_idle,
)

from servers.limits import FD_SETSIZE

EMFILE_MAX_FDS = 64
EMFILE_CLIENTS = 120
# A spinning loop makes tens of thousands of wait calls per second; 0.3 s tells it apart.
SPIN_WINDOW_S = 0.3
SPIN_BOUND_CALLS = 600
SCALE_CONNECTIONS = 19_000
SCALE_SOURCES = [f"127.0.0.{i}" for i in range(2, 10)]


def _need_fds(needed: int) -> None:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        pytest.skip(f"RLIMIT_NOFILE soft limit {soft} < {needed}: run `ulimit -n 20000` first")


@pytest.mark.parametrize("backend", C_BACKENDS)
def test_emfile_is_counted_and_does_not_spin(start_server, backend: str) -> None:
    """Out of descriptors on accept: shed through the reserve descriptor or pause accepting,
    never spin; serve again once descriptors come back."""
    srv = start_server(backend, "http", max_fds=EMFILE_MAX_FDS)
    clients = []
    try:
        for _ in range(EMFILE_CLIENTS):
            clients.append(socket.create_connection(("127.0.0.1", srv.port), timeout=10))
        wait_for_stats(srv, lambda s: s.accept_emfile > 0, what="accept_emfile > 0")
        before = srv.stats()
        time.sleep(SPIN_WINDOW_S)  # window: the wait calls a spinning loop would make
        after = srv.stats()
        assert srv.is_alive()
        assert after.wait_calls - before.wait_calls < SPIN_BOUND_CALLS, (before, after)
        assert after.current_connections < EMFILE_MAX_FDS
    finally:
        close_all(clients)
    wait_idle(srv)
    assert_serves(srv.port, "http")
    # Exhaust it again: pausing and resuming the listener works more than once.
    clients = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(90)]
    close_all(clients)
    wait_idle(srv)
    assert_serves(srv.port, "http")


@pytest.mark.parametrize("protocol", ["http", "echo"])
def test_c_select_closes_fds_past_fd_setsize_and_serves_the_rest(
    start_server, protocol: str
) -> None:
    _need_fds(1300)
    srv = start_server("c-select", protocol)
    assert srv.ready_info["fd_number_limit"] == FD_SETSIZE
    if protocol == "http":
        request = http_request()
        with HttpClient(srv.port) as client:
            client.send(request)
            expected = client.read_response().raw
    else:
        request = expected = os.urandom(512)
    base = wait_idle(srv)
    socks = open_many(srv.port, 1200)
    try:
        stats = wait_for_stats(
            srv,
            lambda s: (
                s.current_connections + s.rejected_fd_setsize - base.rejected_fd_setsize == 1200
            ),
            timeout_s=30.0,
            what="every connection held or rejected",
        )
        held = stats.current_connections
        rejected = stats.rejected_fd_setsize - base.rejected_fd_setsize
        assert FD_SETSIZE - 64 <= held < FD_SETSIZE, stats
        counts = exchange_all(socks, request, expected)
        assert counts == {"served": held, "closed": rejected, "pending": 0}, (counts, stats)
    finally:
        close_all(socks)
    wait_idle(srv, timeout_s=30.0)
    assert_serves(srv.port, protocol)


# 20 rounds at 25 ms (0.5 s): each slow client's byte arrives in its own wake-up, which
# is what the no-spinning bound below counts.
DRIBBLE_ROUNDS = 20


def _dribble(socks: list[socket.socket], rounds: int, gap_s: float) -> None:
    for _ in range(rounds):
        for sock in socks:
            with contextlib.suppress(BlockingIOError):
                sock.send(b"a")
        time.sleep(gap_s)  # window: the slow clients' pace


@pytest.mark.parametrize("backend", C_BACKENDS)
def test_slowloris_neither_starves_others_nor_spins(start_server, backend: str) -> None:
    """200 clients dribble one header byte each per 25 ms and never finish their heads."""
    srv = start_server(backend, "http")
    slow = open_many(srv.port, 200)
    try:
        for sock in slow:
            sock.setblocking(False)
            sock.send(b"GET / HTTP/1.1\r\nX-Slow: ")
        before = wait_for_stats(srv, lambda s: s.current_connections == 200)
        dribbler = threading.Thread(
            target=_dribble, args=(slow, DRIBBLE_ROUNDS, 0.025), daemon=True
        )
        dribbler.start()
        for _ in range(5):  # others are served meanwhile
            assert_serves(srv.port, "http")
            time.sleep(0.1)  # window: spread the fresh clients over the dribble
        dribbler.join(timeout=30)
        after = wait_for_stats(srv, lambda s: s.bytes_in - before.bytes_in >= 200 * DRIBBLE_ROUNDS)
        # At most one wait call per byte that arrived (plus the fresh clients'): no spinning.
        assert after.wait_calls - before.wait_calls <= after.bytes_in - before.bytes_in, (
            before,
            after,
        )
        assert after.current_connections >= 200, "slow clients were dropped"
        # A slow client that finally completes its head is answered.
        slow[0].setblocking(True)
        slow[0].settimeout(20)
        slow[0].sendall(b"\r\n\r\n")
        assert b"Hello, world!" in slow[0].recv(4096)
    finally:
        close_all(slow)
    # One that dribbles past the head cap gets 431 (or a reset, if bytes were in flight).
    with HttpClient(srv.port) as client:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            client.send(b"GET / HTTP/1.1\r\nX-Slow: ")
            for _ in range(HEAD_CAP_BYTES // 4096 + 2):
                client.send(b"b" * 4096)
                time.sleep(0.005)  # window: a dribble, not one burst
        with contextlib.suppress(PeerClosed, ConnectionResetError):
            assert client.read_response().status == 431
    wait_idle(srv)
    assert_serves(srv.port, "http")


def _send_head(port: int, head: bytes, failures: list[str]) -> None:
    """Send the head and read until the server closes; a timeout (EXCHANGE_TIMEOUT_S: the
    server neither read nor closed) is recorded, as the thread's exception is not seen."""
    try:
        with connect(port) as sock:
            sock.sendall(head)
            while sock.recv(65536):
                pass
    except (BrokenPipeError, ConnectionResetError):
        pass  # closed while the head was still arriving: refused
    except OSError as exc:
        failures.append(f"{len(head)} B head: {exc!r}")


@pytest.mark.parametrize("backend", C_BACKENDS)
def test_8_mib_heads_are_refused_with_bounded_memory(start_server, backend: str) -> None:
    srv = start_server(backend, "http")
    server = psutil.Process(srv.pid)
    rss_before = server.memory_info().rss
    huge = b"GET / HTTP/1.1\r\nX-Huge: " + b"h" * (8 << 20)
    failures: list[str] = []
    threads = [
        threading.Thread(target=_send_head, args=(srv.port, head, failures), daemon=True)
        for head in (huge, huge + b"\r\n\r\n", b"x" * (8 << 20), huge, huge)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a client sending an 8 MiB head was never closed"
    assert not failures, f"clients the server neither read nor closed: {failures}"
    assert srv.is_alive()
    wait_idle(srv)
    # The head cap bounds what is buffered (64 KiB per connection, plus one read).
    assert server.memory_info().rss - rss_before < 8 << 20
    assert_serves(srv.port, "http")


@pytest.mark.parametrize("backend", C_BACKENDS)
@pytest.mark.parametrize("protocol", ["http", "echo"])
def test_reset_storm(start_server, backend: str, protocol: str) -> None:
    """Hundreds of clients that send part of a request, or unread echo, and reset at once."""
    srv = start_server(backend, protocol)
    partial = http_request()[:20] if protocol == "http" else os.urandom(3000)
    for _ in range(3):
        socks = open_many(srv.port, 400)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.send(partial)
        for sock in socks:
            reset_close(sock)
    stats = wait_idle(srv, timeout_s=30.0)
    assert srv.is_alive()
    assert stats.accepted == stats.closed, stats
    assert_serves(srv.port, protocol)


# c-select-big: select(2) itself past FD_SETSIZE, as far as RLIMIT_NOFILE lets it.
@pytest.mark.slow  # 19,000 connections
@pytest.mark.parametrize("backend", ["c-epoll", "c-select-big", "c-uring"])
def test_19000_connections_at_once(start_server, backend: str) -> None:
    """19,000 connections open at once (from 8 loopback source addresses), each served while
    all are open; then SIGTERM with all of them open ends the server with status 0 (c-uring:
    19,000 multishot receives armed, cancelled at shutdown)."""
    _need_fds(SCALE_CONNECTIONS + 300)
    srv = start_server(backend, "http")
    with HttpClient(srv.port) as client:
        client.send(http_request())
        expected = client.read_response().raw
    wait_idle(srv)
    socks = open_many_from(srv.port, SCALE_CONNECTIONS, SCALE_SOURCES)
    try:
        stats = wait_for_stats(
            srv,
            lambda s: s.current_connections == SCALE_CONNECTIONS,
            timeout_s=120.0,
            what=f"current_connections == {SCALE_CONNECTIONS}",
        )
        assert stats.peak_connections >= SCALE_CONNECTIONS
        counts = exchange_all(socks, http_request(), expected, timeout_s=180.0)
        assert counts == {"served": SCALE_CONNECTIONS, "closed": 0, "pending": 0}, counts
        assert srv.stats().current_connections == SCALE_CONNECTIONS
        assert srv.stop() == 0, srv.stderr_text()
    finally:
        close_all(socks)
