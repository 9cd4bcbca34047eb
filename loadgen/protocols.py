"""Request bytes and response framing for the two protocols.

The Python worker's hot loop compares each read with the last complete,
validated response (one memcmp); only when that fails does it call the parsers
here, which handle split reads, new header values (a changing Date header)
and errors. The compiled core (loadgen/c/http.c) applies the same rules in C
and leaves every answer it cannot classify with certainty to these functions.
"""

from __future__ import annotations

from loadgen.config import LoadConfig

MAX_HEADER_BYTES = 64 * 1024

# parse_response outcomes
INCOMPLETE = 0
COMPLETE = 1
BAD = 2


def build_request(cfg: LoadConfig) -> bytes:
    """The bytes every active connection sends, identical for every request."""
    if cfg.protocol == "echo":
        pattern = b"0123456789abcdefghijklmnopqrstuvwxyz"
        return (pattern * (cfg.payload_bytes // len(pattern) + 1))[: cfg.payload_bytes]
    host = cfg.host if ":" not in cfg.host else f"[{cfg.host}]"
    # Churn: tell the server this connection carries one request only.
    close = "Connection: close\r\n" if cfg.new_connection_per_request else ""
    # The request line and Host only, as wrk sends: the server parses the same bytes from
    # either client. With User-Agent and Accept as well, the Python epoll server served wrk
    # 4-6% faster than this client for its header parsing alone (issue 21,
    # benchmarks/loadgen_vs_wrk.py, 2026-12-06).
    return f"GET {cfg.http_path} HTTP/1.1\r\nHost: {host}:{cfg.port}\r\n{close}\r\n".encode("ascii")


def parse_echo(buf: bytes, request: bytes) -> tuple[int, str]:
    """Echo: the answer is complete when as many bytes came back as were sent."""
    if len(buf) < len(request):
        return INCOMPLETE, ""
    if len(buf) > len(request):
        return BAD, f"echo returned {len(buf)} bytes for a {len(request)}-byte request"
    if buf != request:
        return BAD, "echo returned different bytes than were sent"
    return COMPLETE, ""


def parse_http(buf: bytes) -> tuple[int, str]:
    """HTTP/1.1: a status line, headers, then exactly Content-Length body bytes.

    Chunked or close-delimited bodies are reported as bad responses: the
    reference servers always send Content-Length and a benchmark needs framing.
    """
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        if len(buf) > MAX_HEADER_BYTES:
            return BAD, "no end of HTTP headers within 64 KiB"
        return INCOMPLETE, ""
    head = buf[:head_end]
    lines = head.split(b"\r\n")
    status_line = lines[0].split(b" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
        return BAD, f"not an HTTP/1.x status line: {lines[0][:80]!r}"
    try:
        status = int(status_line[1])
    except ValueError:
        return BAD, f"bad HTTP status code in {lines[0][:80]!r}"
    if not 200 <= status < 300:
        return BAD, f"HTTP status {status}"
    content_length = -1
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                content_length = int(value.strip())
            except ValueError:
                return BAD, f"bad Content-Length {value.strip()[:40]!r}"
        elif name.strip().lower() == b"transfer-encoding":
            return BAD, "chunked/transfer-encoded responses are not supported (need Content-Length)"
    if content_length < 0:
        return BAD, "HTTP response without Content-Length"
    total = head_end + 4 + content_length
    if len(buf) < total:
        return INCOMPLETE, ""
    if len(buf) > total:
        return BAD, "more bytes than one HTTP response (unsolicited data)"
    return COMPLETE, ""


def http_closes(buf: bytes) -> bool:
    """A complete HTTP answer after which the server closes the connection.

    ``Connection: close``, or HTTP/1.0 without ``Connection: keep-alive``
    (RFC 9112 section 9.3). Called on the slow path only.
    """
    head = buf[: buf.find(b"\r\n\r\n")]
    lines = head.split(b"\r\n")
    tokens: list[bytes] = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"connection":
            tokens += [t.strip().lower() for t in value.split(b",")]
    if b"close" in tokens:
        return True
    return lines[0].startswith(b"HTTP/1.0") and b"keep-alive" not in tokens
