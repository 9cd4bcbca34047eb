"""Direct client checks run by bench itself: verify a server, and the fd-limit probe.

``verify`` is TechEmpower's rule: check a real request/response before you
measure, so a broken server is a failed trial, not a fast one.

``fd_limit_probe`` answers "what does a client see when select runs out of
descriptor numbers?". It opens N plain sockets, sends one request on each and
classifies what came back, one label per connection: a full response, EOF
(the server accepted then closed: select's backend closes fds >= FD_SETSIZE
right after accept), a reset, or nothing before the deadline. A load
generator would count these as errors and move on; here they are the result.
"""

from __future__ import annotations

import errno
import selectors
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

HTTP_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
# fd-limit probe: a connect that waits this long was not going to be accepted, and
# after this many such timeouts in a row the probe stops offering connections.
CONNECT_TIMEOUT_S = 2.0
MAX_CONNECT_TIMEOUTS_IN_A_ROW = 3
HTTP_BODY = b"Hello, world!"
ECHO_PAYLOAD = b"bench-verify-0123456789abcdef\n"


class VerifyError(RuntimeError):
    """The server did not answer a real request correctly."""


def _http_response_complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or 0)
    return len(body) >= length


def verify_server(host: str, port: int, protocol: str, timeout_s: float = 3.0) -> None:
    """One real request/response against the server; VerifyError says what was wrong."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            request = HTTP_REQUEST if protocol == "http" else ECHO_PAYLOAD
            sock.sendall(request)
            data = b""
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                if protocol == "http" and _http_response_complete(data):
                    break
                if protocol == "echo" and len(data) >= len(request):
                    break
    except OSError as exc:
        raise VerifyError(f"verify request to {host}:{port} failed: {exc}") from exc
    if protocol == "http":
        if not data.startswith(b"HTTP/1.") or b" 200 " not in data.split(b"\r\n", 1)[0] + b" ":
            raise VerifyError(f"verify: expected an HTTP 200 response, got {data[:80]!r}")
        if not data.endswith(HTTP_BODY):
            raise VerifyError(f"verify: expected body {HTTP_BODY!r}, got {data[-40:]!r}")
    elif data != request:
        raise VerifyError(f"verify: echo returned {data[:80]!r} for {request!r}")


@dataclass(frozen=True)
class ProbeResult:
    """What N clients saw against one server."""

    requested: int
    established: int
    connect_errors: dict[str, int]
    observations: dict[str, int]  # label -> count: ok, eof, reset, timeout, error:<name>

    @property
    def served(self) -> int:
        return self.observations.get("ok", 0)


def _label(exc: OSError) -> str:
    if exc.errno in (errno.ECONNRESET, errno.EPIPE):
        return "reset"
    return f"error:{errno.errorcode.get(exc.errno or 0, str(exc.errno))}"


def fd_limit_probe(
    host: str,
    port: int,
    connections: int,
    wait_accepted: Callable[[int], None] | None = None,
    deadline_s: float = 5.0,
) -> ProbeResult:
    """Open ``connections`` sockets, one HTTP request each, and classify every outcome.

    ``wait_accepted(n)`` (optional) blocks until the server has accepted n
    connections, so requests go out only after the server decided each one's fate.
    """
    socks: list[socket.socket] = []
    connect_errors: Counter[str] = Counter()
    observations: Counter[str] = Counter()
    try:
        timeouts_in_a_row = 0
        for i in range(connections):
            if timeouts_in_a_row >= MAX_CONNECT_TIMEOUTS_IN_A_ROW:
                # The server stopped accepting and its backlog is full (HAProxy past
                # its maxconn): every further connect would wait out its timeout.
                connect_errors["not_attempted_after_timeouts"] += connections - i
                break
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(CONNECT_TIMEOUT_S)
            try:
                sock.connect((host, port))
            except OSError as exc:
                kind = errno.errorcode.get(exc.errno or 0, "timeout")
                connect_errors[kind] += 1
                timeouts_in_a_row = timeouts_in_a_row + 1 if kind == "timeout" else 0
                sock.close()
                continue
            timeouts_in_a_row = 0
            socks.append(sock)
        if wait_accepted is not None:
            wait_accepted(len(socks))
        pending: dict[int, tuple[socket.socket, bytearray]] = {}
        with selectors.DefaultSelector() as sel:
            for sock in socks:
                try:
                    sock.sendall(HTTP_REQUEST)
                except OSError as exc:
                    observations[_label(exc)] += 1
                    continue
                sock.setblocking(False)
                pending[sock.fileno()] = (sock, bytearray())
                sel.register(sock, selectors.EVENT_READ)
            end = time.monotonic() + deadline_s
            while pending and time.monotonic() < end:
                for key, _ in sel.select(timeout=max(0.0, end - time.monotonic())):
                    sock, buf = pending[key.fd]
                    try:
                        chunk = sock.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError as exc:
                        observations[_label(exc)] += 1
                    else:
                        if chunk:
                            buf += chunk
                            if not _http_response_complete(bytes(buf)):
                                continue
                            ok = buf.startswith(b"HTTP/1.1 200") or buf.startswith(b"HTTP/1.0 200")
                            observations["ok" if ok else "bad_response"] += 1
                        else:
                            observations["eof" if not buf else "eof_mid_response"] += 1
                    sel.unregister(sock)
                    del pending[key.fd]
            observations["timeout"] += len(pending)
    finally:
        for sock in socks:
            sock.close()
    if observations["timeout"] == 0:
        del observations["timeout"]
    return ProbeResult(
        requested=connections,
        established=len(socks),
        connect_errors=dict(connect_errors),
        observations=dict(observations),
    )
