"""Bad clients: garbage bytes, an oversized head without terminator, half-closed clients and
abrupt resets. After each, the server is alive, has dropped the connection, and serves a
fresh client (issue 2)."""

from __future__ import annotations

import contextlib
import os
import random
import select
import socket
import threading
import time

import pytest
from test_servers_support import (
    BACKENDS,
    HEAD_CAP_BYTES,
    HttpClient,
    PeerClosed,
    assert_hello,
    assert_serves,
    connect,
    http_request,
    reset_close,
    wait_for_stats,
    wait_idle,
)

ALL_CASES = [pytest.param(b, p, id=f"{b}-{p}") for b in BACKENDS for p in ("echo", "http")]


def _survives(srv, protocol: str, case: str) -> None:
    """After a bad client: the process lives, the bad connection is gone, a new client works."""
    assert srv.is_alive(), f"server died after {case}"
    wait_idle(srv)
    assert_serves(srv.port, protocol)


def _expect_client_error_then_close(client: HttpClient, case: str) -> None:
    """Either a 4xx answer followed by a close, or a close straight away (FIN or RST)."""
    try:
        resp = client.read_response()
    except PeerClosed:
        return
    assert 400 <= resp.status < 500, f"{case}: expected a 4xx answer, got {resp.raw!r}"
    assert client.peer_closed(), f"{case}: connection left open after the error answer"


def _send_ignoring_close(sock: socket.socket, data: bytes) -> None:
    """The server may close mid-send on purpose (bad request); the send error is then expected."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def _garbage_http(srv, rng: random.Random) -> None:
    # Binary garbage with a head terminator: a malformed request line.
    with HttpClient(srv.port) as client:
        _send_ignoring_close(client.sock, rng.randbytes(8192) + b"\r\n\r\n")
        _expect_client_error_then_close(client, "binary garbage with terminator")
    _survives(srv, "http", "binary garbage with terminator")
    # Garbage that never completes a head: must hit the head cap, not grow forever.
    with HttpClient(srv.port) as client:
        garbage = rng.randbytes(HEAD_CAP_BYTES * 2).replace(b"\r\n\r\n", b"xxxx")
        _send_ignoring_close(client.sock, garbage)
        _expect_client_error_then_close(client, "unterminated garbage over the head cap")
    _survives(srv, "http", "unterminated garbage over the head cap")
    # A syntactically plausible but unsupported request line.
    with HttpClient(srv.port) as client:
        _send_ignoring_close(client.sock, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")
        _expect_client_error_then_close(client, "TLS hello to a plain HTTP server")
    _survives(srv, "http", "TLS hello")


def _send_then_shut_wr(sock: socket.socket, data: bytes) -> None:
    sock.sendall(data)
    sock.shutdown(socket.SHUT_WR)


def _half_close(srv, protocol: str) -> None:
    if protocol == "http":
        with HttpClient(srv.port) as client:
            client.send(http_request())
            client.sock.shutdown(socket.SHUT_WR)
            assert_hello(client.read_response())
            assert client.peer_closed(), "http: no close after answering a half-closed client"
    else:
        payload = os.urandom(256 * 1024)  # fits the server's queue cap: sendall cannot deadlock
        with connect(srv.port) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            received = bytearray()
            while chunk := sock.recv(65536):
                received += chunk
            assert bytes(received) == payload, (
                f"echo after SHUT_WR: got {len(received)} of {len(payload)} B (or wrong bytes)"
            )
        # Larger than the queue cap: the server pauses reading, and must still see the EOF
        # after it resumes, flush everything, then close.
        big = os.urandom(6 << 20)
        with connect(srv.port) as sock:
            sender = threading.Thread(target=_send_then_shut_wr, args=(sock, big), daemon=True)
            sender.start()
            received = bytearray()
            while chunk := sock.recv(1 << 20):
                received += chunk
            sender.join(timeout=30)
            assert bytes(received) == big, (
                f"echo of 6 MiB then SHUT_WR: got {len(received)} B (or wrong bytes)"
            )
    _survives(srv, protocol, "half-closed client")


def _resets(srv, protocol: str) -> None:
    # Mid-request: part of a request, then RST.
    partial = http_request()[:20] if protocol == "http" else os.urandom(1000)
    for _ in range(20):
        sock = connect(srv.port)
        sock.sendall(partial)
        reset_close(sock)
    _survives(srv, protocol, "reset mid-request")
    # With unread answers: many pipelined requests (or 2 MiB of echo) never read, then RST.
    for _ in range(5):
        before = srv.stats()
        sock = connect(srv.port)
        sock.setblocking(False)
        data = http_request() * 2000 if protocol == "http" else os.urandom(2 << 20)
        try:
            sent = 0
            deadline = time.monotonic() + 2.0
            while sent < len(data) and time.monotonic() < deadline:
                try:
                    sent += sock.send(data[sent:])
                except BlockingIOError:
                    select.select([], [sock], [], 0.1)  # until the socket can take more
            # The reset must find answers in the unread buffer: wait until the server wrote.
            wait_for_stats(srv, lambda s, b=before: s.bytes_out > b.bytes_out, what="an answer")
        finally:
            reset_close(sock)
    _survives(srv, protocol, "reset with unread answers")
    # Connect and reset at once, before sending anything.
    for _ in range(20):
        reset_close(connect(srv.port))
    _survives(srv, protocol, "reset right after connect")


@pytest.mark.parametrize(("backend", "protocol"), ALL_CASES)
def test_server_survives_bad_clients(start_server, backend: str, protocol: str) -> None:
    """One server per backend x protocol meets every bad client in turn."""
    srv = start_server(backend, protocol)
    rng = random.Random(7)
    if protocol == "http":
        _garbage_http(srv, rng)
    _half_close(srv, protocol)
    _resets(srv, protocol)
    stats = wait_idle(srv)
    assert stats.accepted == stats.closed, stats
