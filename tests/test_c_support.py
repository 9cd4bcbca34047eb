"""Helpers of the tests/test_c_*.py files (this module holds no tests): a scripted client
whose whole conversation can be compared byte for byte between two servers, and the
scripts the Python servers and their C twins must answer identically.

Every script ends with the server closing the connection after reading everything the
client sent, so the answer is delimited by EOF and does not depend on timing.
"""

from __future__ import annotations

import os
import random
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from test_servers_support import CLOSED_ERRNOS, HEAD_CAP_BYTES, connect, http_request, open_many

import servers.c_backends  # noqa: F401 -- registers the C twins in this process
from servers import protocol
from servers.registry import PLUGINS_ENV

# Server subprocesses register them too (the registry imports SELECTBENCH_PLUGINS).
if "servers.c_backends" not in os.environ.get(PLUGINS_ENV, ""):
    os.environ[PLUGINS_ENV] = ",".join(
        filter(None, (os.environ.get(PLUGINS_ENV, ""), "servers.c_backends"))
    )

# The Python event-loop backends and their C twins; the io_uring completion server has no
# Python twin and must answer like the Python epoll server.
TWINS: tuple[tuple[str, str], ...] = (
    ("select", "c-select"),
    ("poll", "c-poll"),
    ("epoll", "c-epoll"),
    ("epoll-et", "c-epoll-et"),
    # select(2) on bitmaps sized from RLIMIT_NOFILE: below 1,024 it answers as select does.
    ("select", "c-select-big"),
    ("uring-poll", "c-uring-poll"),
    ("epoll", "c-uring"),
)
C_BACKENDS: tuple[str, ...] = tuple(c for _, c in TWINS)
# No byte moving for this long while the client does not read: the server stopped reading.
STALL_S = 0.5
CONVERSATION_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Send:
    data: bytes


@dataclass(frozen=True)
class Await:
    """Read until this many bytes have arrived in total."""

    total: int


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class SendWithoutReading:
    """Send without reading until everything left or nothing moves for STALL_S; whatever
    is left goes out with the next step, which reads again."""

    data: bytes


@dataclass(frozen=True)
class ShutWrite:
    pass


Step = Send | Await | Pause | SendWithoutReading | ShutWrite


@dataclass(frozen=True)
class Transcript:
    received: bytes
    ending: str  # "eof" or "reset"

    def describe_difference(self, other: Transcript) -> str:
        if self.ending != other.ending:
            return f"ending {self.ending} vs {other.ending}"
        a, b = self.received, other.received
        first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
        if first is None:
            first = min(len(a), len(b))
        return (
            f"{len(a)} vs {len(b)} bytes, first difference at offset {first}: "
            f"{a[first : first + 80]!r} vs {b[first : first + 80]!r}"
        )


class _Conversation:
    def __init__(self, port: int) -> None:
        self.sock = connect(port)
        self.sock.setblocking(False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ)
        self.received = bytearray()
        self.outbox = memoryview(b"")
        self.ending: str | None = None
        self.deadline = time.monotonic() + CONVERSATION_TIMEOUT_S

    def pump(self, done: Callable[[], bool], reading: bool = True, stall_s: float = 0) -> None:
        last_progress = time.monotonic()
        while not done() and self.ending is None:
            now = time.monotonic()
            assert now < self.deadline, (
                f"conversation timed out: sent all but {len(self.outbox)} B, "
                f"received {len(self.received)} B"
            )
            if stall_s and now - last_progress > stall_s:
                return
            interest = (selectors.EVENT_READ if reading else 0) | (
                selectors.EVENT_WRITE if self.outbox else 0
            )
            if not interest:
                time.sleep(0.01)
                continue
            self.sel.modify(self.sock, interest)
            for _key, mask in self.sel.select(0.05):
                try:
                    if mask & selectors.EVENT_WRITE and self.outbox:
                        sent = self.sock.send(self.outbox[:262144])
                        self.outbox = self.outbox[sent:]
                        last_progress = time.monotonic()
                    if mask & selectors.EVENT_READ and reading:
                        chunk = self.sock.recv(1 << 20)
                        if not chunk:
                            self.ending = "eof"
                            return
                        self.received += chunk
                        last_progress = time.monotonic()
                except BlockingIOError:
                    pass
                except OSError as exc:
                    if exc.errno not in CLOSED_ERRNOS:
                        raise
                    self.ending = "reset"

    def run(self, steps: list[Step]) -> Transcript:
        try:
            for step in steps:
                if isinstance(step, Send):
                    self.outbox = memoryview(bytes(self.outbox) + step.data)
                    self.pump(lambda: not self.outbox)
                elif isinstance(step, Await):
                    self.pump(lambda total=step.total: len(self.received) >= total)
                elif isinstance(step, Pause):
                    end = time.monotonic() + step.seconds
                    self.pump(lambda end=end: time.monotonic() >= end)
                elif isinstance(step, SendWithoutReading):
                    self.outbox = memoryview(bytes(self.outbox) + step.data)
                    self.pump(lambda: not self.outbox, reading=False, stall_s=STALL_S)
                else:
                    self.pump(lambda: not self.outbox)
                    if self.ending is None:
                        self.sock.shutdown(socket.SHUT_WR)
            self.pump(lambda: False)  # until the server closes
            assert self.ending is not None
            return Transcript(bytes(self.received), self.ending)
        finally:
            self.sel.close()
            self.sock.close()


def converse(port: int, steps: list[Step]) -> Transcript:
    """Play `steps` against 127.0.0.1:port, then read until the server closes."""
    return _Conversation(port).run(steps)


def _get(headers: list[tuple[str, str]] | None = None, version: str = "1.1") -> bytes:
    return http_request(version=version, headers=headers or [])


CLOSE = _get([("Connection", "close")])
KEEP = _get()
OK_KA_LEN = len(protocol.OK_KEEP_ALIVE)


def http_scripts(seed: int = 1) -> dict[str, list[Step]]:
    """Byte streams for the HTTP server; every one ends in a close by the server."""
    rng = random.Random(seed)
    garbage = rng.randbytes(8192).replace(b"\r\n\r\n", b"xxxx") + b"\r\n\r\n"
    under_cap = _get([("X-Big", "a" * (60 * 1024))])
    # One byte over the cap and no terminator: the server can only decide (431) once it
    # has read every byte, so it closes with nothing unread (FIN, never RST). A longer
    # head would race its close against bytes still in flight.
    unterminated = b"GET /" + b"u" * (HEAD_CAP_BYTES + 1 - 5)
    many = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    split: list[Step] = [Send(bytes([b])) for b in KEEP]
    return {
        "keep-alive, one at a time": [
            *(s for i in range(5) for s in (Send(KEEP), Await(OK_KA_LEN * (i + 1)))),
            Send(CLOSE),
        ],
        "pipelined 10, last asks close": [Send(KEEP * 9 + CLOSE)],
        "Connection: close, case-insensitive": [Send(_get([("connection", "Close")]))],
        "HTTP/1.0": [Send(_get(version="1.0"))],
        "HTTP/1.0 keep-alive": [
            Send(_get([("Connection", "keep-alive")], "1.0") * 2 + _get(version="1.0"))
        ],
        "head split across sends": [*split, Pause(0.05), Send(CLOSE)],
        "head split mid-terminator": [
            Send(KEEP[:-2]),
            Pause(0.05),
            Send(KEEP[-2:] + CLOSE[:7]),
            Pause(0.05),
            Send(CLOSE[7:]),
        ],
        "HEAD then GET": [Send(b"HEAD / HTTP/1.1\r\n\r\n" + CLOSE)],
        "binary garbage": [Send(garbage)],
        "TLS hello": [Send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")],
        "oversized head, unterminated": [Send(unterminated)],
        "head just under the cap": [Send(under_cap + CLOSE)],
        "POST with a body (405)": [Send(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")],
        "body too large (413)": [Send(b"GET / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n")],
        "chunked (501)": [Send(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")],
        "body split across sends": [
            Send(b"GET / HTTP/1.1\r\nContent-Length: 6\r\n\r\nabc"),
            Pause(0.05),
            Send(b"def" + CLOSE),
        ],
        "Content-Length is 1*DIGIT (RFC 9110)": [
            Send(b"GET / HTTP/1.1\r\nContent-Length:\t010 \r\n\r\n0123456789" + KEEP),
            Await(OK_KA_LEN * 2),
            Send(b"GET / HTTP/1.1\r\nContent-Length: +1_0\r\n\r\n"),
        ],
        "Content-Length over the digit cap (400)": [
            Send(b"GET / HTTP/1.1\r\nContent-Length: " + b"1" * 40 + b"\r\n\r\n"),
        ],
        "Content-Length repeated (400)": [
            Send(b"GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n"),
        ],
        "deep pipeline, 5000": [Send(many * 4999 + CLOSE)],
        "client stops reading, then resumes": [
            SendWithoutReading(many * 20000),
            Pause(0.2),
            Send(CLOSE),
        ],
        "half-close after a request": [Send(KEEP), ShutWrite()],
        "connect and close": [ShutWrite()],
    }


def http_close_scripts() -> dict[str, list[Step]]:
    """For servers started with http_close: every response closes."""
    return {
        "keep-alive asked, closed anyway": [Send(_get([("Connection", "keep-alive")]))],
        "pipelined, only the first answered": [Send(KEEP * 3)],
        "HTTP/1.0 keep-alive": [Send(_get([("Connection", "keep-alive")], "1.0"))],
    }


def echo_scripts(seed: int = 2) -> dict[str, list[Step]]:
    """Byte streams for the echo server; the client half-closes, the server flushes, closes."""
    rng = random.Random(seed)
    mib = rng.randbytes(1 << 20)
    sizes = [1, 2, 1023, 4096, 65535, 65537]
    return {
        "1 MiB": [Send(mib), Await(len(mib)), ShutWrite()],
        "sizes one after another": [
            *(
                s
                for n, total in zip(sizes, _running_totals(sizes), strict=True)
                for s in (Send(mib[:n]), Await(total))
            ),
            ShutWrite(),
        ],
        "1 MiB three times back to back": [Send(mib * 3), ShutWrite()],
        "client stops reading, then resumes": [
            SendWithoutReading(rng.randbytes(16 << 20)),
            Pause(0.2),
            ShutWrite(),
        ],
        "half-close with 256 KiB in flight": [Send(mib[: 256 << 10]), ShutWrite()],
        "connect and close": [ShutWrite()],
    }


def _running_totals(sizes: list[int]) -> list[int]:
    totals, total = [], 0
    for n in sizes:
        total += n
        totals.append(total)
    return totals


def open_many_from(
    port: int, count: int, sources: list[str], timeout_s: float = 120.0
) -> list[socket.socket]:
    """``open_many`` round-robin over the loopback source addresses ``sources``."""
    return open_many(port, count, timeout_s, sources)
