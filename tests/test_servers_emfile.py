"""Out of descriptors on accept (EMFILE): the server must neither crash nor spin.

A level-triggered listener with pending connections stays readable; a server
that just retries accept() would call its wait function in a tight loop.
Counting wait calls (not timing anything) tells spinning from not spinning.
"""

from __future__ import annotations

import socket
import time

import pytest

MAX_FDS = 64
CLIENTS = 120  # well past what the server can hold
# A spinning loop makes tens of thousands of wait calls per second; a server that sheds
# the excess connections makes almost none while nothing happens: 0.3 s tells them apart.
SPIN_WINDOW_S = 0.3
SPIN_BOUND_CALLS = 600


def _http_get(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := conn.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "backend", ["select", "poll", "epoll", "epoll-et", "uring-poll", "threads"]
)
def test_emfile_is_counted_and_does_not_spin(start_server, backend: str) -> None:
    srv = start_server(backend, "http", max_fds=MAX_FDS)
    clients = []
    try:
        for _ in range(CLIENTS):
            clients.append(socket.create_connection(("127.0.0.1", srv.port), timeout=10))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and srv.stats().accept_emfile == 0:
            time.sleep(0.05)
        before = srv.stats()
        time.sleep(SPIN_WINDOW_S)  # window: the wait calls a spinning loop would make
        after = srv.stats()
        assert after.accept_emfile > 0, "the server never hit EMFILE: test set-up is wrong"
        assert srv.is_alive()
        if after.wait_instrumented:
            # (The thread server has no wait call to count; it backs off by sleeping.)
            assert after.wait_calls - before.wait_calls < SPIN_BOUND_CALLS
        assert after.current_connections < MAX_FDS
    finally:
        for c in clients:
            c.close()
    # With the descriptors back, the server answers again.
    deadline = time.monotonic() + 10
    while srv.stats().current_connections > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b"Hello, world!" in _http_get(srv.port)
