"""Echo protocol: every byte comes back exactly, and a client that stops reading cannot make
the server buffer without bound (issue 2: cap the queued bytes, stop reading until it drains)."""

from __future__ import annotations

import os
import random
import selectors
import socket
import time

import psutil
import pytest
from test_servers_support import (
    assert_echo,
    backend_params,
    connect,
    echo_exchange,
    wait_idle,
)

# 1 B to 1 MiB: edges of typical read sizes and a few random sizes (seeded, so a failure reruns).
_rng = random.Random(20240602)
PAYLOAD_SIZES_B: tuple[int, ...] = (
    1,
    2,
    1023,
    4096,
    65535,
    65537,
    *sorted(_rng.randrange(1, 1 << 20) for _ in range(3)),
    1 << 20,
)

# Backpressure: far more than the loopback socket buffers hold on this machine
# (tcp_wmem max 4 MiB per side, rcvbuf autotuning up to tcp_rmem max), so a server
# that stops reading makes the client's send stall.
BACKPRESSURE_TOTAL_B = 32 << 20
# A correct server queues at most its cap (about 1 MiB) plus one read; anything beyond
# a few MiB is a server buffering without bound.
MAX_SERVER_QUEUE_B = 4 << 20
# RSS growth allowed while the client is not reading. Measured here: a bounded server
# grows ~1-1.5 MiB and the client stalls after ~7-10 MiB, so an unbounded server would
# hold the remaining 20+ MiB.
MAX_RSS_GROWTH_B = 8 << 20
# Loopback moves 256 KiB in microseconds: 0.4 s without progress is a stalled window.
STALL_NO_PROGRESS_S = 0.4
SEND_PHASE_LIMIT_S = 15.0


@pytest.mark.parametrize("backend", backend_params())
def test_echo_random_payloads_byte_for_byte(start_server, backend: str) -> None:
    """Payloads 1 B..1 MiB on one connection, then each size on a fresh connection."""
    srv = start_server(backend, "echo")
    payloads = [os.urandom(n) for n in PAYLOAD_SIZES_B]
    with connect(srv.port) as sock:
        for payload in payloads:
            assert_echo(sock, payload)
    for payload in payloads[::3]:
        with connect(srv.port) as sock:
            assert_echo(sock, payload)
    wait_idle(srv)
    assert srv.is_alive()


@pytest.mark.parametrize("backend", backend_params())
def test_echo_several_clients_interleaved(start_server, backend: str) -> None:
    """Several connections open at once, used alternately: no bytes cross between connections."""
    srv = start_server(backend, "echo")
    socks = [connect(srv.port) for _ in range(8)]
    try:
        for round_no in range(3):
            for i, sock in enumerate(socks):
                assert_echo(sock, bytes([i]) * (1000 + round_no) + os.urandom(100))
    finally:
        for sock in socks:
            sock.close()
    wait_idle(srv)


def _send_until_stalled(sock: socket.socket, payload: memoryview) -> int:
    """Send without ever reading until done, or until no byte leaves for STALL_NO_PROGRESS_S."""
    sent = 0
    last_progress = time.monotonic()
    phase_end = last_progress + SEND_PHASE_LIMIT_S
    with selectors.DefaultSelector() as sel:
        sel.register(sock, selectors.EVENT_WRITE)
        while sent < len(payload):
            now = time.monotonic()
            if now - last_progress > STALL_NO_PROGRESS_S or now > phase_end:
                break
            if sel.select(0.2):
                try:
                    sent += sock.send(payload[sent : sent + 262144])
                    last_progress = time.monotonic()
                except BlockingIOError:
                    pass
    return sent


@pytest.mark.parametrize("backend", backend_params())
def test_echo_backpressure_client_stops_reading(start_server, backend: str) -> None:
    """Push 32 MiB without reading, check the server's queue stayed bounded, then read it all back.

    Checked two ways, because stats may count bytes_out when handed to a transport
    (asyncio, uvloop) rather than when the kernel takes them: bytes_in - bytes_out from
    the stats, and the server's RSS growth.
    """
    srv = start_server(backend, "echo")
    server_proc = psutil.Process(srv.pid)
    rss_before_b = server_proc.memory_info().rss
    payload = os.urandom(BACKPRESSURE_TOTAL_B)
    view = memoryview(payload)
    with connect(srv.port) as sock:
        sock.setblocking(False)
        sent = _send_until_stalled(sock, view)
        assert sent > 0, "server accepted no byte at all"
        assert sent < len(payload), (
            f"all {sent} B went out to a client that reads nothing: "
            "the server never stopped reading"
        )
        # The send made no progress for STALL_NO_PROGRESS_S: in that time the server did not
        # drain its receive buffer (reading would have reopened the window), so what it
        # holds now is what it holds; no further wait is needed.
        stats = srv.stats()
        rss_growth_b = server_proc.memory_info().rss - rss_before_b
        queued_b = stats.bytes_in - stats.bytes_out
        assert queued_b <= MAX_SERVER_QUEUE_B, (
            f"server queued {queued_b} B for a client that does not read (sent {sent} B): {stats}"
        )
        assert rss_growth_b <= MAX_RSS_GROWTH_B, (
            f"server RSS grew {rss_growth_b} B while the client did not read (sent {sent} B)"
        )
        # Resume: the rest goes out while everything comes back, byte for byte.
        received = echo_exchange(sock, payload, timeout_s=60.0, already_sent_b=sent)
        assert received == payload, "echoed bytes differ after backpressure"
    wait_idle(srv)
