"""Keep-alive reconnect (issue 10 item 6): a server that closes every connection after
N answers, as nginx does after 1,000, is followed, not counted as failing.

The server is a small test-local one (a thread per connection) that answers
HTTP/1.1 GETs and closes cleanly after every N answers: with
``Connection: close`` in the N-th answer, or without it (a plain EOF). Its
close is nginx's lingering close: FIN first, then read and discard until the
client closes, so a request already on its way is not answered with a reset.
Count-based assertions only.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from loadgen import LoadConfig, LoadResult, run_load
from loadgen.protocols import http_closes

BODY = b"Hello, world!"
ACTIVE = 8


class ClosingServer:
    """HTTP/1.1 hello server that closes each connection after ``every`` answers."""

    def __init__(self, every: int, close_header: bool) -> None:
        self.every = every
        self.close_header = close_header
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.accepted = 0
        self.answers = 0
        self.handlers: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            handler = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            handler.start()
            self.handlers.append(handler)

    def _answer(self, last: bool) -> bytes:
        close = b"Connection: close\r\n" if last and self.close_header else b""
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
        return head + close + b"\r\n" + BODY

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5.0)  # every wait is bounded
        buf = b""
        served = 0
        with conn:
            try:
                while served < self.every and not self.stopping.is_set():
                    while b"\r\n\r\n" not in buf:
                        data = conn.recv(65536)
                        if not data:
                            return
                        buf += data
                    _, _, buf = buf.partition(b"\r\n\r\n")
                    served += 1
                    conn.sendall(self._answer(served == self.every))
                    with self.lock:
                        self.answers += 1
                # Lingering close: FIN, then drain until the client closes (bounded).
                conn.shutdown(socket.SHUT_WR)
                conn.settimeout(2.0)
                while conn.recv(65536):
                    pass
            except OSError:
                pass

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()
        self.acceptor.join(5.0)
        for handler in self.handlers:
            handler.join(5.0)


@pytest.fixture
def closing_server() -> Iterator[Any]:
    servers: list[ClosingServer] = []

    def factory(every: int, close_header: bool) -> ClosingServer:
        server = ClosingServer(every, close_header)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


# The fast tier keeps one case (plain EOF, open loop); the full suite runs all four.
@pytest.mark.parametrize("mode", [pytest.param("closed", marks=pytest.mark.slow), "open"])
@pytest.mark.parametrize(
    "close_header",
    [pytest.param(True, marks=pytest.mark.slow), False],
    ids=["connection-close", "plain-eof"],
)
def test_keepalive_slots_reconnect_when_the_server_closes(
    closing_server: Any, mode: str, close_header: bool, loadgen_core: str
) -> None:
    every = 7
    server = closing_server(every, close_header)
    cfg = LoadConfig(
        port=server.port,
        active_connections=ACTIVE,
        mode=mode,  # type: ignore[arg-type]
        rate_rps=800.0 if mode == "open" else None,
        measure_s=0.6,
        warmup_s=0.2,
        workers=1,
    )
    result = run_load(cfg)
    server.stop()

    assert result["errors_total"] == 0, result["error_samples"]
    assert sum(result["connections"]["connect_errors"].values()) == 0
    # Requests kept flowing through every interval of the window.
    assert result["requests"] > 2 * every * ACTIVE
    assert all(point["requests"] > 0 for point in result["timeseries"])
    # Every answer the server sent was counted, none twice.
    assert result["requests_total"] == server.answers
    # Each reconnect is one more connection: the server accepted exactly these.
    conns = result["connections"]
    assert conns["connections_opened"] == ACTIVE + result["reconnects"]
    assert server.accepted == conns["connections_opened"] + conns["precheck_connections"]
    # A slot reconnects after each `every` answers (the last connection of a slot may
    # close after the window, with nothing outstanding: then it is not replaced).
    full_connections = result["requests_total"] // every
    assert full_connections - ACTIVE <= result["reconnects"] <= full_connections
    assert 0 < result["reconnects_measured"] <= result["reconnects"]
    duration = result["measured_duration_s"]
    assert result["reconnect_rate_per_s"] == round(result["reconnects_measured"] / duration, 3)
    assert result["loadgen_core"] == loadgen_core
    typed = LoadResult.from_dict(result)
    assert typed.reconnects == result["reconnects"]
    assert typed.reconnect_rate_per_s == result["reconnect_rate_per_s"]
    if mode == "open":
        expected = cfg.rate_rps * cfg.measure_s  # type: ignore[operator]
        assert abs(result["requests_sent"] - expected) <= 0.05 * expected


def test_a_refused_reconnect_is_an_error() -> None:
    """A server that closes and then refuses is failing: unexpected_close, slot ends."""
    server = ClosingServer(every=3, close_header=False)
    stopped = threading.Event()

    def stop_listening() -> None:  # after the window opens: no new connection succeeds
        server.listener.close()
        stopped.set()

    try:
        cfg = LoadConfig(port=server.port, active_connections=2, measure_s=0.5, warmup_s=0.0,
                         workers=1)  # fmt: skip
        result = run_load(cfg, on_measure_start=stop_listening)
    finally:
        server.stop()
    assert stopped.is_set()
    # One failure per slot: the reconnect is refused (or reset, if it was still in
    # the closed listener's backlog), and the slot ends.
    assert result["errors"]["unexpected_close"] == 2, result["error_samples"]
    assert result["errors_total"] == 2
    assert result["connections"]["active_alive_at_end"] == 0


def test_http_closes_reads_the_connection_header() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    assert not http_closes(ok)
    assert http_closes(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert http_closes(b"HTTP/1.1 200 OK\r\nconnection: Upgrade, CLOSE\r\n\r\n")
    assert not http_closes(b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n")
    assert http_closes(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert not http_closes(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n")
