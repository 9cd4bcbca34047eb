"""The C loop inside this process (servers.c_server.CLoopServer on a thread, stopped with
stop()): counters reach ServerStats.snapshot(), bad arguments are refused, and a loop that
cannot start raises OSError instead of crashing. Under the sanitizer build of .ci/run
these run the C code in the test process itself."""

from __future__ import annotations

import errno
import os
import resource
import socket
import threading
import time
from collections.abc import Callable

import psutil
import pytest
from test_c_support import C_BACKENDS  # registers the C backends too
from test_servers_support import HttpClient, assert_hello, connect, echo_exchange, http_request

c_server = pytest.importorskip(
    "servers.c_server", reason="the C extension is not built: pip install -e ."
)
from servers import registry  # noqa: E402
from servers.config import ServerConfig  # noqa: E402
from servers.limits import FD_SETSIZE, open_listener  # noqa: E402
from servers.stats import ServerStats  # noqa: E402

cloop = c_server.load_extension()


def _adapter(backend: str) -> object:
    """The twin's adapter name, skipped with the reason where it cannot run (io_uring)."""
    declared = registry.get(backend)
    reason = declared.unavailable_reason()
    skip = pytest.mark.skipif(reason is not None, reason=str(reason))
    return pytest.param(declared.mechanism, marks=skip, id=declared.mechanism)


# The readiness adapters of the C loop, and c-uring's completion loop.
MECHANISMS = tuple(_adapter(b) for b in C_BACKENDS)
BACKEND_OF = {registry.get(b).mechanism: b for b in C_BACKENDS}
URING_COMPLETION = _adapter("c-uring")


def _start(
    mechanism: str, protocol: str, instrumentation: bool = True
) -> tuple[object, ServerStats, threading.Thread, int]:
    config = ServerConfig(
        backend=BACKEND_OF[mechanism], protocol=protocol, instrumentation=instrumentation
    )
    listener = open_listener("127.0.0.1", 0, 128)
    port = listener.getsockname()[1]
    stats = ServerStats(config.backend, protocol, wait_instrumented=instrumentation)
    server = c_server.CLoopServer(config, listener, stats, mechanism)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"cloop-{mechanism}", daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return server, stats, thread, port


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_in_process_loop_serves_counts_and_stops(mechanism: str) -> None:
    server, stats, thread, port = _start(mechanism, "http")
    try:
        with HttpClient(port) as client:
            for _ in range(3):
                client.send(http_request())
                assert_hello(client.read_response())
        snap = stats.snapshot()
        assert snap["requests"] == 3 and snap["accepted"] == 1, snap
        assert snap["wait_calls"] >= 1 and snap["loop_iterations"] == snap["wait_calls"]
        assert snap["wait_cpu_sample_seed"] is not None
    finally:
        server.stop()
        thread.join(timeout=10)
    assert not thread.is_alive(), "stop() did not end the loop"
    assert thread.errors == []  # type: ignore[attr-defined]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_in_process_stop_closes_open_connections(mechanism: str) -> None:
    server, stats, thread, port = _start(mechanism, "echo")
    socks = [connect(port) for _ in range(20)]
    try:
        payload = b"z" * 300_000
        assert echo_exchange(socks[0], payload) == payload
        socks[1].sendall(b"unanswered? no: echoed, then the server stops")
    finally:
        server.stop()
        thread.join(timeout=10)
    assert stats.snapshot()["closed"] == 20
    for sock in socks:
        sock.settimeout(10)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        sock.close()


@pytest.mark.parametrize("mechanism", ["epoll", URING_COMPLETION])
def test_without_instrumentation_nothing_is_timed(mechanism: str) -> None:
    """--no-instrumentation: the plain loop, as the Python loop's _loop_plain."""
    server, stats, thread, port = _start(mechanism, "http", instrumentation=False)
    try:
        with HttpClient(port) as client:
            client.send(http_request())
            assert_hello(client.read_response())
        snap = stats.snapshot()
        assert snap["requests"] == 1 and snap["wait_calls"] == 0 and snap["wait_ns"] == 0
        assert snap["wait_cpu_sample_seed"] is None
    finally:
        server.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_bad_arguments_are_refused() -> None:
    unknown = r"unknown mechanism 'kqueue': choose one of .*'select'.* or uring-completion"
    with pytest.raises(ValueError, match=unknown):
        cloop.Loop(
            mechanism="kqueue", listen_fd=3, wake_fd=4, wake_write_fd=5, http=True,
            http_close=False, instrumentation=True, max_queued_bytes=1, max_head_bytes=64,
            sample_seed=1,
        )  # fmt: skip
    with pytest.raises(TypeError):
        cloop.Loop("epoll")  # keyword-only


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_loop_that_cannot_start_raises(mechanism: str) -> None:
    """A listener descriptor that is not open: OSError (EBADF) from the adapter."""
    r, w = socket.socketpair()
    closed = socket.socket()
    bad_fd = closed.fileno()
    closed.close()
    loop = cloop.Loop(
        mechanism=mechanism, listen_fd=bad_fd, wake_fd=r.fileno(), wake_write_fd=w.fileno(),
        http=True, http_close=False, instrumentation=False, max_queued_bytes=1 << 20,
        max_head_bytes=1 << 16, sample_seed=0,
    )  # fmt: skip
    try:
        with pytest.raises(OSError) as info:
            loop.run()
        assert info.value.errno == errno.EBADF
    finally:
        r.close()
        w.close()


# Descriptors the test holds open so that the next ones are numbered past FD_SETSIZE.
PAST_FD_SETSIZE = FD_SETSIZE + 64
# RLIMIT_NOFILE the select-big loop starts under: bitmaps sized for 128 must grow.
SMALL_NOFILE = 128


def _hold_descriptors_below(n: int) -> list[int]:
    """Open /dev/null until the next descriptor is numbered >= n; the caller closes them."""
    held: list[int] = []
    try:
        while not held or held[-1] < n - 1:
            held.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
    except BaseException:
        for fd in held:
            os.close(fd)
        raise
    return held


def _snapshot_when(stats: ServerStats, predicate: Callable[[dict], bool]) -> dict:
    """Poll the in-process counters until predicate holds (a liveness bound, not a timing)."""
    deadline = time.monotonic() + 15.0
    while not predicate(snap := stats.snapshot()):
        if time.monotonic() > deadline:
            pytest.fail(f"the counters never reached the state the test waits for: {snap}")
        time.sleep(0.02)
    return snap


def _server_side_fd(port: int, client: socket.socket) -> int:
    """The descriptor number this process's server holds for ``client`` (psutil)."""
    peer = client.getsockname()[1]
    for conn in psutil.Process().net_connections(kind="tcp"):
        if conn.laddr and conn.raddr and (conn.laddr.port, conn.raddr.port) == (port, peer):
            return conn.fd
    raise AssertionError(f"no accepted socket for 127.0.0.1:{peer} -> {port} in this process")


@pytest.mark.parametrize(
    ("mechanism", "served"), [("select", False), ("select-big", True)], ids=["select", "select-big"]
)
def test_a_descriptor_numbered_past_fd_setsize(mechanism: str, served: bool) -> None:
    """c-select-big serves a connection on a descriptor numbered > FD_SETSIZE, its bitmaps
    grown past the RLIMIT_NOFILE they were sized for; c-select, the same loop on glibc's
    fd_set, closes it right after accept. Loopback, in this process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < PAST_FD_SETSIZE + 64:
        pytest.skip(f"RLIMIT_NOFILE soft limit {soft} < {PAST_FD_SETSIZE + 64}: ulimit -n 2048")
    # The loop sizes its bitmaps from the soft limit when it starts: start it under a small
    # one, and the first exchange shows it has started.
    resource.setrlimit(resource.RLIMIT_NOFILE, (SMALL_NOFILE, hard))
    try:
        server, stats, thread, port = _start(mechanism, "http")
        with HttpClient(port) as client:
            client.send(http_request())
            assert_hello(client.read_response())
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    held = _hold_descriptors_below(PAST_FD_SETSIZE)
    try:
        with HttpClient(port) as client:
            if served:
                client.send(http_request())
                assert_hello(client.read_response())
                assert _server_side_fd(port, client.sock) > FD_SETSIZE
            else:  # nothing sent, so the close is a FIN, never a reset
                assert client.sock.recv(1) == b"", "c-select kept a descriptor past FD_SETSIZE"
        snap = _snapshot_when(stats, lambda s: s["closed"] == 1 + served)
        assert snap["accepted"] == 1 + served and snap["requests"] == 1 + served, snap
        assert snap["rejected_fd_setsize"] == (0 if served else 1), snap
        assert snap["errors"] == 0, snap
    finally:
        server.stop()
        thread.join(timeout=10)
        for fd in held:
            os.close(fd)
    assert not thread.is_alive(), "stop() did not end the loop"
    assert thread.errors == []  # type: ignore[attr-defined]
