"""The two wire protocols, written once and shared by every backend.

Both are pure functions from received bytes to bytes to send, so the
select, poll, epoll, asyncio and thread servers cannot drift apart in what
they answer; only how they learn that a socket is ready differs.
"""

from __future__ import annotations

import re
from typing import NamedTuple

HELLO_BODY = b"Hello, world!"


def _response(status: str, body: bytes, keep_alive: bool, head_only: bool = False) -> bytes:
    connection = b"keep-alive" if keep_alive else b"close"
    head = (
        b"HTTP/1.1 " + status.encode() + b"\r\n"
        b"Content-Type: text/plain\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"Connection: " + connection + b"\r\n\r\n"
    )
    return head if head_only else head + body


# Prebuilt so that the hot path allocates nothing but the joined output.
OK_KEEP_ALIVE = _response("200 OK", HELLO_BODY, keep_alive=True)
OK_CLOSE = _response("200 OK", HELLO_BODY, keep_alive=False)
HEAD_KEEP_ALIVE = _response("200 OK", HELLO_BODY, keep_alive=True, head_only=True)
HEAD_CLOSE = _response("200 OK", HELLO_BODY, keep_alive=False, head_only=True)
BAD_REQUEST = _response("400 Bad Request", b"bad request\n", keep_alive=False)
HEAD_TOO_LARGE = _response(
    "431 Request Header Fields Too Large", b"request head too large\n", keep_alive=False
)
NOT_ALLOWED = _response("405 Method Not Allowed", b"method not allowed\n", keep_alive=False)
NOT_IMPLEMENTED = _response("501 Not Implemented", b"chunked bodies not supported\n", False)
BODY_TOO_LARGE = _response("413 Content Too Large", b"request body too large\n", False)
# Request bodies are read and discarded; a cap keeps a lying Content-Length from
# making the server buffer without bound.
MAX_BODY_BYTES = 1 << 20
# RFC 9110 8.6: Content-Length = 1*DIGIT (ASCII 0-9 only: no sign, underscore, inner
# space or other script's digits), with optional whitespace (SP, HTAB) around the field
# value. More than 18 digits is a 400, not a 413: 10**18 - 1 still fits a signed 64-bit
# integer, so the C parser (servers/c/http.c) reads every accepted value without
# overflow, as RFC 9110 8.6 asks of a recipient; anything that long is far past
# MAX_BODY_BYTES anyway.
MAX_CONTENT_LENGTH_DIGITS = 18
_CONTENT_LENGTH = re.compile(rb"[ \t]*([0-9]{1,%d})[ \t]*" % MAX_CONTENT_LENGTH_DIGITS)


class HttpResult(NamedTuple):
    """What the server does with the bytes received so far."""

    output: bytes  # responses, in request order
    rest: bytes  # unconsumed input (an incomplete request)
    close: bool  # close after sending output; read nothing more
    requests: int  # requests answered (error responses included)


def _parse_head(head: bytes) -> tuple[bytes, bytes, bool, int, bool] | None:
    """(method, version, keep_alive, content_length, chunked), or None if malformed."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[1] or not parts[2].startswith(b"HTTP/1."):
        return None
    method, _, version = parts
    keep_alive = version == b"HTTP/1.1"
    content_length = -1  # none seen yet
    chunked = False
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            return None
        name = name.strip().lower()
        if name == b"connection":
            tokens = value.strip().lower()
            if b"close" in tokens:
                keep_alive = False
            elif b"keep-alive" in tokens:
                keep_alive = True
        elif name == b"content-length":
            # A second Content-Length is a 400 even when it repeats the first: RFC 9110
            # 8.6 lets a recipient either refuse or merge identical values, and refusing
            # leaves no framing for two parsers to read differently (request smuggling).
            digits = _CONTENT_LENGTH.fullmatch(value)
            if digits is None or content_length >= 0:
                return None
            content_length = int(digits[1])
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    return method, version, keep_alive, max(content_length, 0), chunked


def http_consume(data: bytes, max_head_bytes: int, close_every: bool = False) -> HttpResult:
    """Answer every complete request in `data` (pipelining: in order).

    Keep-alive is the HTTP/1.1 default; `Connection: close` and HTTP/1.0
    without `Connection: keep-alive` close after the response, as does
    `close_every` (the seed blog's epoll server closed after each response).
    """
    out: list[bytes] = []
    start = 0
    n = len(data)
    while start < n:
        end = data.find(b"\r\n\r\n", start)
        if end < 0:
            if n - start > max_head_bytes:
                out.append(HEAD_TOO_LARGE)
                return HttpResult(b"".join(out), b"", True, len(out))
            break
        if end - start > max_head_bytes:
            out.append(HEAD_TOO_LARGE)
            return HttpResult(b"".join(out), b"", True, len(out))
        parsed = _parse_head(data[start:end])
        if parsed is None:
            out.append(BAD_REQUEST)
            return HttpResult(b"".join(out), b"", True, len(out))
        method, _version, keep_alive, content_length, chunked = parsed
        if chunked:
            out.append(NOT_IMPLEMENTED)
            return HttpResult(b"".join(out), b"", True, len(out))
        if content_length > MAX_BODY_BYTES:
            out.append(BODY_TOO_LARGE)
            return HttpResult(b"".join(out), b"", True, len(out))
        body_end = end + 4 + content_length
        if body_end > n:
            break  # wait for the rest of the body
        keep_alive = keep_alive and not close_every
        if method == b"GET":
            out.append(OK_KEEP_ALIVE if keep_alive else OK_CLOSE)
        elif method == b"HEAD":
            out.append(HEAD_KEEP_ALIVE if keep_alive else HEAD_CLOSE)
        else:
            out.append(NOT_ALLOWED)
            keep_alive = False
        start = body_end
        if not keep_alive:
            return HttpResult(b"".join(out), b"", True, len(out))
    rest = data[start:] if start < n else b""
    if len(out) == 1:
        return HttpResult(out[0], rest, False, 1)
    return HttpResult(b"".join(out), rest, False, len(out))
