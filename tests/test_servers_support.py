"""Client-side helpers shared by the tests/test_servers_*.py files (this module holds no tests).

Every helper talks to a real server over real sockets on 127.0.0.1 and is
bounded by a deadline, so a broken server fails a test instead of hanging it.
Deadlines are liveness bounds only: no test asserts how fast anything is.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from servers import registry
from servers.stats import StatsSnapshot

# The test matrix is the registry: a backend registered there is tested here.
BACKENDS: tuple[str, ...] = registry.names()
# Backends whose wait call the server times itself.
WAIT_INSTRUMENTED_BACKENDS: frozenset[str] = frozenset(
    b.name for b in registry.all_backends() if b.wait_instrumented
)

HELLO_BODY = b"Hello, world!"
LOCALHOST = "127.0.0.1"
# Liveness bound for one client exchange; generous because the machine is shared and noisy.
EXCHANGE_TIMEOUT_S = 20.0
# The request head cap the servers enforce (issue 2: "e.g. 64 KiB").
HEAD_CAP_BYTES = 64 * 1024

CLOSED_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ENOTCONN})


def backend_params(backends: Iterable[str] = BACKENDS) -> list[Any]:
    """pytest params for backends; one whose module is missing (uvloop) is skipped by the
    start_server fixture, with the registry's reason."""
    return [pytest.param(b, id=b) for b in backends]


def connect(port: int, timeout_s: float = EXCHANGE_TIMEOUT_S) -> socket.socket:
    """A blocking TCP client connected to 127.0.0.1:port, with a bounded timeout on every call."""
    sock = socket.create_connection((LOCALHOST, port), timeout=timeout_s)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def reset_close(sock: socket.socket) -> None:
    """Close with SO_LINGER 0, so the kernel sends RST instead of FIN (an abrupt client)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def http_request(
    version: str = "1.1", path: str = "/", headers: Iterable[tuple[str, str]] = ()
) -> bytes:
    """A GET request head; HTTP/1.1 gets a Host header as the RFC requires."""
    lines = [f"GET {path} HTTP/{version}"]
    if version == "1.1":
        lines.append("Host: 127.0.0.1")
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


@dataclass(frozen=True)
class HttpResponse:
    """One parsed response; header names are lower-cased, raw is the exact bytes received."""

    status_line: str
    headers: dict[str, str]
    body: bytes
    raw: bytes

    @property
    def status(self) -> int:
        return int(self.status_line.split(" ", 2)[1])


class PeerClosed(Exception):
    """The server closed (FIN or RST) before a complete response arrived."""


class HttpClient:
    """A blocking HTTP/1.x client that keeps leftover bytes between responses (for pipelining)."""

    def __init__(self, port: int, timeout_s: float = EXCHANGE_TIMEOUT_S) -> None:
        self.sock = connect(port, timeout_s)
        self._buf = bytearray()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def feed(self, data: bytes) -> None:
        """Bytes the caller read from self.sock itself (e.g. in a non-blocking loop)."""
        assert data, "server closed the connection"
        self._buf += data

    def _fill(self) -> None:
        try:
            chunk = self.sock.recv(65536)
        except OSError as exc:
            if exc.errno in CLOSED_ERRNOS:
                raise PeerClosed(f"connection reset: {exc}") from exc
            raise
        if not chunk:
            raise PeerClosed(
                f"EOF with {len(self._buf)} unparsed bytes: {bytes(self._buf)[:200]!r}"
            )
        self._buf += chunk

    def read_response(self) -> HttpResponse:
        """Read one response framed by Content-Length (the servers always send it)."""
        while b"\r\n\r\n" not in self._buf:
            self._fill()
        head_end = self._buf.index(b"\r\n\r\n") + 4
        head = bytes(self._buf[:head_end]).decode("latin-1")
        status_line, *header_lines = head[:-4].split("\r\n")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            assert sep, f"malformed header line {line!r} in {head!r}"
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self._buf) < head_end + length:
            self._fill()
        raw = bytes(self._buf[: head_end + length])
        del self._buf[: head_end + length]
        return HttpResponse(status_line, headers, raw[head_end:], raw)

    def peer_closed(self) -> bool:
        """True when the server closes (EOF or RST) with no further bytes, within the timeout.

        Raises AssertionError when unexpected bytes arrive; returns False on timeout.
        """
        try:
            while True:
                assert not self._buf, f"unexpected bytes before close: {bytes(self._buf)[:200]!r}"
                self._fill()
        except PeerClosed:
            return not self._buf
        except TimeoutError:
            return False


def assert_hello(resp: HttpResponse, version: str = "1.1") -> None:
    """The reference answer: status, the two headers the issue names, and the 13-byte body."""
    assert resp.status_line == f"HTTP/{version} 200 OK", resp.raw
    assert resp.headers.get("content-type") == "text/plain", resp.raw
    assert resp.headers.get("content-length") == "13", resp.raw
    assert resp.body == HELLO_BODY, resp.raw


def echo_exchange(
    sock: socket.socket,
    payload: bytes,
    timeout_s: float = EXCHANGE_TIMEOUT_S,
    already_sent_b: int = 0,
) -> bytes:
    """Send payload and receive the same number of bytes, full duplex so that neither side blocks.

    A blocking sendall of 1 MiB before reading would deadlock against a server that
    (correctly) stops reading when its output queue is full. already_sent_b: the first
    bytes of payload went out earlier and have not been read back yet.
    """
    sock.setblocking(False)
    received = bytearray()
    view = memoryview(payload)
    sent = already_sent_b
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as sel:
        interest = selectors.EVENT_READ
        if sent < len(payload):
            interest |= selectors.EVENT_WRITE
        sel.register(sock, interest)
        while len(received) < len(payload):
            remaining_s = deadline - time.monotonic()
            assert remaining_s > 0, (
                f"echo of {len(payload)} B timed out: sent {sent}, received {len(received)}"
            )
            for _key, mask in sel.select(min(remaining_s, 1.0)):
                if mask & selectors.EVENT_WRITE and sent < len(payload):
                    with contextlib.suppress(BlockingIOError):
                        sent += sock.send(view[sent : sent + 262144])
                    if sent == len(payload):
                        sel.modify(sock, selectors.EVENT_READ)
                if mask & selectors.EVENT_READ:
                    try:
                        chunk = sock.recv(262144)
                    except BlockingIOError:
                        continue
                    assert chunk, f"server closed after echoing {len(received)} of {len(payload)} B"
                    received += chunk
    sock.setblocking(True)
    sock.settimeout(timeout_s)
    return bytes(received)


def assert_echo(sock: socket.socket, payload: bytes) -> None:
    """Echo payload and compare byte for byte, reporting the first differing offset."""
    got = echo_exchange(sock, payload)
    if got != payload:
        first_diff = next(i for i, (a, b) in enumerate(zip(got, payload, strict=True)) if a != b)
        pytest.fail(f"echo of {len(payload)} B differs from offset {first_diff}")


def assert_serves(port: int, protocol: str) -> None:
    """A fresh client is served correctly: proof the server survived whatever came before."""
    if protocol == "http":
        with HttpClient(port) as client:
            client.send(http_request())
            assert_hello(client.read_response())
    else:
        with connect(port) as sock:
            assert_echo(sock, os.urandom(4096))


def wait_for_stats(
    srv: Any, predicate: Callable[[StatsSnapshot], bool], timeout_s: float = 15.0, what: str = ""
) -> StatsSnapshot:
    """Poll the control channel until predicate(stats) holds; fail with the last stats otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        stats = srv.stats()
        if predicate(stats):
            return stats
        if time.monotonic() > deadline:
            pytest.fail(
                f"stats never satisfied {what or predicate!r} within {timeout_s} s: {stats}"
            )
        time.sleep(0.02)


def wait_idle(srv: Any, timeout_s: float = 15.0) -> StatsSnapshot:
    """Wait until the server holds no client connection (every close processed)."""
    return wait_for_stats(
        srv, lambda s: s.current_connections == 0, timeout_s, "current_connections == 0"
    )


def open_many(
    port: int, count: int, timeout_s: float = 30.0, sources: Sequence[str] = ()
) -> list[socket.socket]:
    """Open count non-blocking connections to 127.0.0.1:port, at most 256 connecting at once.

    Batching keeps the SYN burst under the accept backlog, so no connect waits for
    a SYN retransmission (1 s) on a slow machine. ``sources`` (127.0.0.2, ...) are
    bound round-robin: each has its own ephemeral ports, so tens of thousands of
    connections do not crowd one address.
    """
    socks: list[socket.socket] = []
    pending: dict[int, socket.socket] = {}
    deadline = time.monotonic() + timeout_s
    try:
        with selectors.EpollSelector() as sel:
            while len(socks) < count:
                assert time.monotonic() < deadline, (
                    f"only {len(socks)} of {count} connections established in {timeout_s} s"
                )
                while len(pending) < 256 and len(socks) + len(pending) < count:
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sock.setblocking(False)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    if sources:
                        sock.bind((sources[(len(socks) + len(pending)) % len(sources)], 0))
                    err = sock.connect_ex((LOCALHOST, port))
                    assert err in (0, errno.EINPROGRESS), f"connect: {os.strerror(err)}"
                    pending[sock.fileno()] = sock
                    sel.register(sock, selectors.EVENT_WRITE)
                for key, _mask in sel.select(1.0):
                    sock = pending.pop(key.fd)
                    sel.unregister(sock)
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    assert err == 0, f"connect failed: {os.strerror(err)}"
                    socks.append(sock)
    except BaseException:
        for sock in [*socks, *pending.values()]:
            sock.close()
        raise
    return socks


@dataclass
class _Exchange:
    sock: socket.socket
    to_send: memoryview
    received: bytearray
    outcome: str = "pending"  # "served" | "closed" | "pending"


def exchange_all(
    socks: list[socket.socket], request: bytes, expected: bytes, timeout_s: float = 60.0
) -> dict[str, int]:
    """On every socket, send request and expect exactly the bytes expected, all concurrently.

    Returns outcome counts {"served": n, "closed": m, "pending": k}; "closed" means the
    server closed or reset the connection before the full answer. Wrong bytes fail.
    """
    states = {s.fileno(): _Exchange(s, memoryview(request), bytearray()) for s in socks}
    deadline = time.monotonic() + timeout_s
    open_count = len(states)
    with selectors.EpollSelector() as sel:
        for fd, st in states.items():
            sel.register(st.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            del fd
        while open_count and time.monotonic() < deadline:
            for key, mask in sel.select(1.0):
                st = states[key.fd]
                try:
                    if mask & selectors.EVENT_WRITE and st.to_send:
                        n = st.sock.send(st.to_send)
                        st.to_send = st.to_send[n:]
                        if not st.to_send:
                            sel.modify(st.sock, selectors.EVENT_READ)
                    if mask & selectors.EVENT_READ:
                        chunk = st.sock.recv(65536)
                        if not chunk:
                            raise ConnectionResetError(errno.ECONNRESET, "EOF")
                        st.received += chunk
                        assert expected.startswith(st.received), (
                            f"wrong bytes: {bytes(st.received)[:200]!r} vs {expected[:200]!r}"
                        )
                        if len(st.received) == len(expected):
                            st.outcome = "served"
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if exc.errno not in CLOSED_ERRNOS:
                        raise
                    st.outcome = "closed"
                if st.outcome != "pending":
                    sel.unregister(st.sock)
                    open_count -= 1
    counts = {"served": 0, "closed": 0, "pending": 0}
    for st in states.values():
        counts[st.outcome] += 1
    return counts


def close_all(socks: Iterable[socket.socket]) -> None:
    for sock in socks:
        sock.close()
