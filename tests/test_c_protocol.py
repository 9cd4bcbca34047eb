"""The C parser (servers/c/http.c) answers exactly what servers.protocol.http_consume answers.

Both are run in this process on the same bytes: crafted edge cases of every rule
of the Python parser (request line, header syntax, Connection tokens, RFC 9110's
Content-Length = 1*DIGIT, the head and body caps), then seeded random requests,
pipelines, truncations and garbage, fed whole and in the chunks a server reads.
Also checks that the C module's constants are the Python loop's, and that its
splitmix64 and so its sampled wait calls are the Python loop's for the same seed.
"""

from __future__ import annotations

import random

import pytest

c_server = pytest.importorskip(
    "servers.c_server", reason="the C extension is not built: pip install -e ."
)
from servers import protocol, registry  # noqa: E402
from servers.limits import FD_SETSIZE, RECV_BYTES  # noqa: E402
from servers.sampling import CallSampler, splitmix64  # noqa: E402
from servers.stats import COUNTERS, GAUGES  # noqa: E402

cloop = c_server.load_extension()
DIGITS_CAP = protocol.MAX_CONTENT_LENGTH_DIGITS

# Valid (1*DIGIT, SP/HTAB around it, at most DIGITS_CAP digits), then everything
# Python's int() accepts and RFC 9110 does not, then other malformed values.
VALID_CONTENT_LENGTHS = (
    "0", "5", " 10 ", "\t2", " \t7\t ", "00012", "1048576", "1048577", "9" * DIGITS_CAP,
    "0" * DIGITS_CAP,
)  # fmt: skip
INVALID_CONTENT_LENGTHS = (
    "+1_0", "1_0", "+10", "+5", "-1", "-0", "+0", "_1", "1_", "1__0", "１０", "١",
    "1" * 40, "9" * (DIGITS_CAP + 1), "0" * (DIGITS_CAP + 1), "0" * 5000, "1 0", "3 3",
    "- 5", "", " ", "+", "-", "0x10", "1e3", "5\x00", "\x0b3\x0c", "5\x0b", "\x0c5",
    "5,5", "5, 5",
)  # fmt: skip
CONTENT_LENGTHS = VALID_CONTENT_LENGTHS + INVALID_CONTENT_LENGTHS
HEADER_LINES = (
    "Host: a", "Connection: close", "Connection: keep-alive", "connection: Close",
    "CONNECTION:  KEEP-ALIVE ", "Connection: keep-alive, close", "Connection: upgrade",
    " Connection : close", "Connection\t: close", "Transfer-Encoding: chunked",
    "transfer-encoding: gzip, CHUNKED", "Transfer-Encoding: gzip", "NoColon", ": empty",
    "X-A:", "X-B: \x00\xff", "Content-Length:", "Content-Length: 3",
)  # fmt: skip
REQUEST_LINES = (
    "GET / HTTP/1.1", "GET / HTTP/1.0", "HEAD / HTTP/1.1", "HEAD /x HTTP/1.0", "POST / HTTP/1.1",
    "get / HTTP/1.1", " / HTTP/1.1", "GET  HTTP/1.1", "GET / HTTP/1.", "GET / HTTP/1.1x",
    "GET / HTTP/2", "GET / http/1.1", "GET / HTTP/1.1 ", "GET /a b HTTP/1.1", "GET /",
    "GET", "", "\x16\x03\x01", "GET\t/ HTTP/1.1", "GET / HTTP/1.9",
)  # fmt: skip


def _compare(data: bytes, max_head: int = 65536, close_every: bool = False) -> None:
    want = protocol.http_consume(data, max_head, close_every)
    got = cloop.http_consume(data, max_head, close_every)
    assert got == (want.output, want.rest, want.close, want.requests), (
        f"C and Python differ on {data[:300]!r} (max_head={max_head}, close={close_every})"
    )


def _request(rng: random.Random) -> bytes:
    line = rng.choice(REQUEST_LINES)
    headers = rng.sample(HEADER_LINES, rng.randrange(0, 4))
    body = b""
    if rng.random() < 0.4:
        value = rng.choice(CONTENT_LENGTHS)
        headers.append(f"Content-Length: {value}")
        if value.strip().isdigit() and len(value.strip()) < 3 and int(value) < 64:
            body = rng.randbytes(int(value))
    head = "\r\n".join([line, *headers]).encode("utf-8", "surrogateescape")
    return head + b"\r\n\r\n" + body


@pytest.mark.parametrize("value", CONTENT_LENGTHS)
@pytest.mark.parametrize("close_every", [False, True])
def test_content_length_parsed_alike(value: str, close_every: bool) -> None:
    for line in ("GET / HTTP/1.1", "POST / HTTP/1.0"):
        head = f"{line}\r\nContent-Length: {value}\r\n\r\n".encode()
        _compare(head, close_every=close_every)
        _compare(head + b"abcdefgh" + head, close_every=close_every)


@pytest.mark.parametrize("value", INVALID_CONTENT_LENGTHS)
def test_content_length_not_1_digit_is_400(value: str) -> None:
    """RFC 9110 8.6: a sign, an underscore, a space inside, another script's digits (which
    Python's int() reads), an empty value or more digits than the cap: 400, then close."""
    data = f"GET / HTTP/1.1\r\nContent-Length: {value}\r\n\r\n0123456789".encode()
    want = (protocol.BAD_REQUEST, b"", True, 1)
    assert tuple(protocol.http_consume(data, 65536)) == want
    assert cloop.http_consume(data, 65536) == want


@pytest.mark.parametrize("value", VALID_CONTENT_LENGTHS)
def test_content_length_1_digit_frames_the_body(value: str) -> None:
    """Accepted values frame the body: what follows it is the next request (or 413)."""
    length = int(value.strip(" \t"))
    one = b"GET / HTTP/1.1\r\n\r\n"
    data = f"GET / HTTP/1.1\r\nContent-Length: {value}\r\n\r\n".encode()
    if length > protocol.MAX_BODY_BYTES:
        want = (protocol.BODY_TOO_LARGE, b"", True, 1)
    else:
        data += b"b" * length + one
        want = (protocol.OK_KEEP_ALIVE * 2, b"", False, 2)
    assert tuple(protocol.http_consume(data, 65536)) == want
    assert cloop.http_consume(data, 65536) == want


@pytest.mark.parametrize(
    "lines",
    [
        ("Content-Length: 5", "Content-Length: 6"),
        ("Content-Length: 5", "Content-Length: 5"),  # refused too: protocol.py says why
        ("Content-Length: 5", "content-length:5"),
        ("Content-Length: 0", "Host: a", "Content-Length: 0"),
        ("Content-Length: 5", "Content-Length: +1_0"),
        ("Content-Length: 5", "Transfer-Encoding: chunked", "Content-Length: 5"),
    ],
)
def test_repeated_content_length_is_400(lines: tuple[str, ...]) -> None:
    """RFC 9112 6.3: differing Content-Length fields make the framing invalid (400, close);
    identical ones are refused as well."""
    data = "\r\n".join(["POST / HTTP/1.1", *lines]).encode() + b"\r\n\r\nhello"
    want = (protocol.BAD_REQUEST, b"", True, 1)
    assert tuple(protocol.http_consume(data, 65536)) == want
    assert cloop.http_consume(data, 65536) == want


@pytest.mark.parametrize("line", REQUEST_LINES)
def test_request_lines_and_headers(line: str) -> None:
    for header in HEADER_LINES:
        data = f"{line}\r\n{header}\r\n\r\n".encode("utf-8", "surrogateescape")
        _compare(data)
        _compare(data * 3)
        _compare(data, close_every=True)


def test_head_cap_edges() -> None:
    for cap in (64, 100, 65536):
        for size in (cap - 1, cap, cap + 1, cap + 2):
            unterminated = b"GET /" + b"a" * (size - len(b"GET /"))
            _compare(unterminated, cap)
            head = b"GET / HTTP/1.1\r\nX: " + b"b" * max(0, size - 19)
            _compare(head + b"\r\n\r\n", cap)
            _compare(b"GET / HTTP/1.1\r\n\r\n" + head + b"\r\n\r\n", cap)
            _compare(b"GET / HTTP/1.1\r\n\r\n" + unterminated, cap)


def test_pipelines_and_partial_bodies() -> None:
    one = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    post = b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789"
    head_req = b"HEAD / HTTP/1.1\r\n\r\n"
    for data in (
        one * 5000,
        one * 3 + b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n" + one,
        one + post,
        one + post[:-3],
        b"GET / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd" + one,
        b"GET / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab",
        head_req * 2 + one,
        b"",
        b"\r\n\r\n",
        b"\r\n" + one,
        one[:-1],
    ):
        _compare(data)
        _compare(data, close_every=True)


@pytest.mark.parametrize("seed", range(8))
def test_random_streams_whole_and_chunked(seed: int) -> None:
    """Random pipelines, truncated, with garbage, and fed in random chunks the way the
    loop feeds them (the unconsumed rest plus the next read)."""
    rng = random.Random(seed)
    for _ in range(400):
        parts = [_request(rng) for _ in range(rng.randrange(1, 6))]
        if rng.random() < 0.2:
            parts.insert(rng.randrange(len(parts) + 1), rng.randbytes(rng.randrange(1, 200)))
        data = b"".join(parts)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data) + 1)]
        cap = rng.choice((64, 200, 65536))
        close_every = rng.random() < 0.2
        _compare(data, cap, close_every)
        rest_py = rest_c = b""
        pos = 0
        while pos < len(data):
            step = rng.randrange(1, 64)
            chunk, pos = data[pos : pos + step], pos + step
            want = protocol.http_consume(rest_py + chunk, cap, close_every)
            got = cloop.http_consume(rest_c + chunk, cap, close_every)
            assert got == tuple(want), f"chunked feed differs on {data[:300]!r}"
            if want.close:
                break
            rest_py, rest_c = want.rest, got[1]


def test_constants_are_the_python_loops() -> None:
    assert cloop.RECV_BYTES == RECV_BYTES
    assert cloop.FD_SETSIZE == FD_SETSIZE
    assert set(cloop.COUNTER_NAMES) == set(COUNTERS) | set(GAUGES)
    # Every C twin declared in servers/c_backends.py has its adapter in the build, and the
    # build links no adapter nobody declared (the adapters register themselves, cloop.h).
    declared = {b.mechanism for b in registry.all_backends() if b.family == registry.FAMILY_C}
    # c-uring is no adapter: the extension runs its own loop for that mechanism.
    declared.discard(registry.get("c-uring").mechanism)
    if cloop.LIBURING is None:  # io_uring's adapter is linked only where liburing was found
        declared.discard(registry.get("c-uring-poll").mechanism)
    assert tuple(sorted(declared)) == cloop.MECHANISMS
    from servers.backends.epoll_backend import MAX_EVENTS

    assert cloop.MAX_EVENTS == MAX_EVENTS
    assert cloop.MAX_BODY_BYTES == protocol.MAX_BODY_BYTES
    assert cloop.MAX_CONTENT_LENGTH_DIGITS == protocol.MAX_CONTENT_LENGTH_DIGITS


SEEDS = [0, 1, 5489, 2**31, 2**32 - 1, 2**32, 2**40 + 7, 2**63, 2**64 - 1]


def _python_splitmix64(seed: int, n: int) -> list[int]:
    state, out = seed, []
    for _ in range(n):
        state, value = splitmix64(state)
        out.append(value)
    return out


def test_splitmix64_is_the_reference_generator() -> None:
    """The published first outputs of splitmix64 for seed 0 (Vigna's reference code)."""
    assert [hex(v) for v in _python_splitmix64(0, 3)] == [
        "0xe220a8397b1dcdaf", "0x6e789e6aa1b965f4", "0x6c45d188009454f",
    ]  # fmt: skip


@pytest.mark.parametrize("seed", SEEDS)
def test_splitmix64_streams_equal_in_c_and_python(seed: int) -> None:
    assert cloop.splitmix64(seed, 10000) == _python_splitmix64(seed, 10000)


@pytest.mark.parametrize("seed", SEEDS)
def test_same_wait_calls_sampled_as_python_for_a_seed(seed: int) -> None:
    """servers/c/sampling.c draws CallSampler's gaps exactly (splitmix64, same doubles)."""
    sampler = CallSampler(seed)
    assert cloop.sample_gaps(seed, 20000) == [sampler.next_gap() for _ in range(20000)]


def test_clock_pair_calibration_is_a_plausible_cost() -> None:
    """Two thread-CPU-clock reads and two monotonic reads: a real system call or two,
    so more than nothing and far less than a millisecond (a liveness bound, not speed)."""
    assert 0 < cloop.calibrate_clock_pair(200) < 1_000_000
