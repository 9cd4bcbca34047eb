"""ChurnWorker: a worker whose active slots use a new TCP connection per request.

Why a separate loop: the keep-alive hot path (one read, one write, one
memcmp) has nothing to do with a connection's life here. Each request is:
non-blocking connect (EPOLLOUT), write the request, read until a complete
answer (EPOLLIN), close, and start the slot's next connection: at once in
closed loop, at the slot's next scheduled time in open loop.

Latency runs from the start of the connect (closed loop; uncorrected in open
loop) or from the intended send time (open loop, corrected): it includes
the TCP handshake. The open-loop send lag runs from the intended send time
to the start of the connect (the client's part; the handshake is in the
latency). A server that closes after its answer is the expected
end; we close as soon as the answer is complete, whichever side is first.

Counting: ``connections_opened`` counts handshakes that completed on our
side; in a run without connect errors it equals the server's ``accepted``
delta (minus the parent's precheck connection). A connection whose connect
is still in progress when the window ends is finished in the drain phase
(its request counted as a drain request), so the server's request counter
still equals ``requests_total``.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import select
import socket
import time
from multiprocessing.connection import Connection

from loadgen.accounting import connect_error_kind
from loadgen.config import LoadConfig
from loadgen.connect import address_family, start_connect
from loadgen.plan import WorkerPlan
from loadgen.protocols import BAD, COMPLETE, INCOMPLETE, parse_echo, parse_http
from loadgen.worker_base import READ_SIZE, WorkerBase

# Back-off before a slot retries after a failed connect or a broken request,
# so a refusing server is not hammered in a tight loop.
RETRY_AFTER_ERROR_NS = 10_000_000
CONNECTING = 0
SENDING = 1
WAITING = 2


class _Conn:
    __slots__ = ("buf", "phase", "rest", "sent_ns", "slot", "sock", "start_ns")

    def __init__(self, sock: socket.socket, slot: int, start_ns: int) -> None:
        self.sock = sock
        self.slot = slot
        self.start_ns = start_ns  # connect started: latency origin in closed loop
        self.sent_ns = 0
        self.phase = CONNECTING
        self.buf = b""
        self.rest = b""


class ChurnWorker(WorkerBase):
    """Worker for LoadConfig.new_connection_per_request (closed and open loop)."""

    def __init__(self, cfg: LoadConfig, plan: WorkerPlan, conn: Connection) -> None:
        super().__init__(cfg, plan, conn)
        self.conns: dict[int, _Conn] = {}
        self.slot_intended: list[int] = []
        self.source_i = self.plan.first_active_index
        self.family = address_family(self.plan.address)
        self.target = (self.plan.address, self.cfg.port)

    def upfront_active(self) -> int:
        return 0

    def established_active(self) -> int:
        # Active slots open their connections per request during the run.
        return self.plan.active

    def inflight(self) -> int:
        return len(self.conns)

    # ------------------------------------------------------------ connection
    def start(self, slot: int, now: int) -> None:
        """Open the slot's next connection (non-blocking); failures retry later."""
        sources = self.plan.sources
        source = None
        if sources:
            source = sources[self.source_i % len(sources)]
            self.source_i += 1
        sock, err = start_connect(self.family, self.target, source, nodelay=True)
        if sock is None:
            self.connect_failed(slot, err, now)
            return
        conn = _Conn(sock, slot, now)
        self.conns[sock.fileno()] = conn
        self.ep.register(sock.fileno(), select.EPOLLOUT)

    def connect_failed(self, slot: int, err: int, now: int) -> None:
        kind = connect_error_kind(err)
        self.run_connect_errors[kind] = self.run_connect_errors.get(kind, 0) + 1
        self.note_sample(f"connect: {errno.errorcode.get(err, err)}")
        self.next_for_slot(slot, now, failed=True)

    def next_for_slot(self, slot: int, now: int, failed: bool = False) -> None:
        if not self.sending:
            return
        if self.cfg.mode == "closed":
            if failed:
                heapq.heappush(self.heap, (now + RETRY_AFTER_ERROR_NS, slot))
            else:
                self.start(slot, now)
            return
        nxt = self.slot_intended[slot] + self.interval_ns
        self.slot_intended[slot] = nxt
        if failed:
            nxt = max(nxt, now + RETRY_AFTER_ERROR_NS)
        if nxt <= now:
            self.lag.append(now - nxt)
            self.start(slot, now)
        else:
            heapq.heappush(self.heap, (nxt, slot))

    def close_conn(self, fd: int) -> _Conn:
        conn = self.conns.pop(fd)
        with contextlib.suppress(OSError):
            self.ep.unregister(fd)
        conn.sock.close()
        return conn

    def fail(self, fd: int, kind: str, detail: str, now: int) -> None:
        """Count a request error and move the slot on."""
        self.count_error(kind, detail)
        conn = self.close_conn(fd)
        self.next_for_slot(conn.slot, now, failed=True)

    def write_request(self, fd: int, conn: _Conn, data: bytes, now: int) -> None:
        try:
            n = conn.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            self.fail(fd, "send_error", f"{type(exc).__name__}: {exc}", now)
            return
        if n < len(data):
            conn.rest = data[n:]
            conn.phase = SENDING
            self.ep.modify(fd, select.EPOLLOUT | select.EPOLLIN)
        else:
            conn.rest = b""
            conn.phase = WAITING
            self.ep.modify(fd, select.EPOLLIN)

    def on_event(self, fd: int, ev: int) -> None:
        if self.timer is not None and fd == self.timer.fd:
            self.timer.drain()
            return
        conn = self.conns.get(fd)
        if conn is None:
            return
        now = time.monotonic_ns()
        if conn.phase == CONNECTING:
            err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err or ev & (select.EPOLLERR | select.EPOLLHUP):
                self.close_conn(fd)
                self.connect_failed(conn.slot, err or errno.ECONNRESET, now)
                return
            self.connections_opened += 1
            conn.sent_ns = now
            self.write_request(fd, conn, self.request, now)
            return
        if conn.phase == SENDING and ev & select.EPOLLOUT:
            self.write_request(fd, conn, conn.rest, now)
            if fd not in self.conns:
                return
        if not ev & (select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP):
            return
        try:
            data = conn.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self.fail(fd, "unexpected_close", f"{type(exc).__name__}: {exc}", now)
            return
        if not data:
            self.fail(fd, "unexpected_close", "server closed before a complete answer", now)
            return
        self.receive(fd, conn, data, now)

    def receive(self, fd: int, conn: _Conn, data: bytes, now: int) -> None:
        """Bytes of the answer arrived: wait for more, fail, or complete."""
        buf = conn.buf + data
        if self.cfg.protocol == "echo":
            status, why = parse_echo(buf, self.request)
        else:
            status, why = parse_http(buf)
        if status == INCOMPLETE:
            conn.buf = buf
        elif status == BAD:
            self.fail(fd, "bad_response", why, now)
        else:
            assert status == COMPLETE
            self.complete_conn(fd, now)

    def complete_conn(self, fd: int, t: int) -> None:
        if self.tick_i < len(self.ticks) and t >= self.tick_ns:
            self.cross_ticks(t)  # the answer belongs to the interval it arrived in
            if fd not in self.conns:
                return  # timed out in that very tick
        conn = self.close_conn(fd)
        if self.sending:
            if self.cfg.mode == "closed":
                self.lat_c.append(t - conn.start_ns)
            else:
                self.lat_c.append(t - self.slot_intended[conn.slot])
                self.lat_u.append(t - conn.start_ns)
            self.next_for_slot(conn.slot, t)
        else:
            self.drain_completed += 1

    def check_timeouts(self, now: int) -> None:
        connect_limit = int(self.cfg.connect_timeout_s * 1e9)
        request_limit = int(self.cfg.request_timeout_s * 1e9)
        for fd, conn in list(self.conns.items()):
            if conn.phase == CONNECTING and now - conn.start_ns > connect_limit:
                self.close_conn(fd)
                self.connect_failed(conn.slot, errno.ETIMEDOUT, now)
            elif conn.phase != CONNECTING and now - conn.sent_ns > request_limit:
                self.fail(fd, "timeout", f"no answer within {self.cfg.request_timeout_s} s", now)

    # ------------------------------------------------------------------ run
    def start_sending(self, warmup_start: int) -> None:
        slots = self.plan.active
        if self.cfg.mode == "closed":
            start = time.monotonic_ns()
            for slot in range(slots):
                self.start(slot, start)
        else:
            self.slot_intended = [0] * slots
            self.start_schedule(range(slots), self.slot_intended, warmup_start)

    def loop(self) -> None:
        poll = self.ep.poll
        mono = time.monotonic_ns
        heap = self.heap
        timer = self.timer
        on_event = self.on_event
        open_loop = self.cfg.mode == "open"
        while self.sending:
            now = mono()
            if now >= self.tick_ns:
                self.cross_ticks(now)
                continue
            while heap and heap[0][0] <= now and self.sending:
                _, slot = heapq.heappop(heap)
                if open_loop:
                    self.lag.append(now - self.slot_intended[slot])
                self.start(slot, now)
            wake = self.tick_ns
            if heap and heap[0][0] < wake:
                wake = heap[0][0]
                if timer is not None and timer.armed_ns != wake:
                    timer.arm(wake)
            for fd, ev in poll(max(0.0, (wake - now) / 1e9)):
                on_event(fd, ev)

    def drain(self) -> None:
        """Finish the connections already started (no new ones), bounded in time."""
        self.heap.clear()
        limit = min(self.cfg.request_timeout_s, 1.0 if self.stop_requested else 30.0)
        mono = time.monotonic_ns
        deadline = mono() + int(limit * 1e9)
        while self.conns and mono() < deadline:
            for fd, ev in self.ep.poll(0.05):
                self.on_event(fd, ev)
            self.check_timeouts(mono())

    def close_active(self) -> None:
        for fd in list(self.conns):
            self.close_conn(fd)


__all__ = ["ChurnWorker"]
