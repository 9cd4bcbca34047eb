"""KeepAliveWorker: each active connection carries request after request (closed or open loop).

This is the Python loop; where loadgen._cload is built, workers run
CoreKeepAliveWorker (loadgen.keepalive_c), which keeps everything here but the
two hot loops, and calls this slow path for whatever its C loop hands back.

Hot path cost per request: one os.read, one os.write, one clock read and a
list append; epoll_wait is amortised over all ready connections. Each active
socket is registered once for EPOLLIN and never modified (no epoll_ctl per
request). A read equal to the last complete, validated answer is a complete
answer (one memcmp); anything else (split reads, a new Date header, errors,
ticks) goes to the slow path, ``slow``.

Open loop: every send also records its lag, the actual send time minus the
intended one (one list append), so the client's own lateness, which the
corrected latency includes, is measured apart.

A server that closes a connection cleanly, after a complete answer (with
``Connection: close`` in it, or a plain EOF before any byte of the next), is
following its policy, not failing: the slot reconnects at once
(loadgen.reconnect) and goes on, and the close counts as a reconnect, not an
error. A request the server closed on unanswered is sent again on the new
connection and its latency runs from its first send; in closed loop the next
request's latency after a ``Connection: close`` runs from the close, so
both include the new handshake. A reconnect that fails counts as an
``unexpected_close`` error (and its connect error) and the slot ends. After
the window a close is followed by a reconnect only to finish a carried
request.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import os
import select
import time
from multiprocessing.connection import Connection

from loadgen.accounting import connect_error_kind
from loadgen.config import LoadConfig
from loadgen.plan import WorkerPlan
from loadgen.protocols import BAD, COMPLETE, INCOMPLETE, http_closes, parse_echo, parse_http
from loadgen.reconnect import PendingSlot, Reconnector
from loadgen.worker_base import READ_SIZE, WorkerBase


class KeepAliveWorker(WorkerBase):
    """Worker whose active connections stay open for the whole run."""

    def __init__(self, cfg: LoadConfig, plan: WorkerPlan, conn: Connection) -> None:
        super().__init__(cfg, plan, conn)
        # For echo the answer is the request; for http the last complete valid answer.
        self.expected: bytes | None = self.request if self.cfg.protocol == "echo" else None
        self.alive = bytearray()  # alive[fd] == 1 for a live active connection
        self.sent: list[int] = []  # sent[fd]: actual send time of the outstanding request, 0 = none
        self.intended: list[int] = []  # open loop: intended send time of the current request
        self.partial: dict[int, bytes] = {}
        self.pending_out: dict[int, bytes] = {}
        self.reconnector = Reconnector(cfg, plan, self.ep)

    def after_connect(self) -> None:
        size = max(self.active_fds, default=0) + 1
        self.alive = bytearray(size)
        for fd in self.active_fds:
            self.alive[fd] = 1
        self.sent = [0] * size
        self.intended = [0] * size

    def inflight(self) -> int:
        sent = self.sent
        return sum(1 for fd in self.active_fds if sent[fd]) + self.reconnector.carried()

    def check_timeouts(self, now: int) -> None:
        limit = int(self.cfg.request_timeout_s * 1e9)
        sent = self.sent
        for fd in [fd for fd in self.active_fds if sent[fd] and now - sent[fd] > limit]:
            self.error(fd, "timeout", f"no answer within {self.cfg.request_timeout_s} s")
        for _ in self.reconnector.expired(now):
            self.reconnect_failed(errno.ETIMEDOUT)

    # ---------------------------------------------------------------- errors
    def error(self, fd: int, kind: str, detail: str) -> None:
        """Count an error on an active connection and drop the connection."""
        self.count_error(kind, detail)
        self.drop(fd)

    def drop(self, fd: int) -> None:
        if fd < len(self.alive) and self.alive[fd]:
            self.alive[fd] = 0
            self.sent[fd] = 0
            self.active_fds.remove(fd)
            self.partial.pop(fd, None)
            self.pending_out.pop(fd, None)
            with contextlib.suppress(OSError):
                self.ep.unregister(fd)
            os.close(fd)

    def io_error(self, fd: int, exc: OSError) -> None:
        if fd in self.reconnector.pending:
            self.connect_done(fd, exc)
            return
        if isinstance(exc, BlockingIOError | InterruptedError):
            rest = self.pending_out.get(fd)
            if rest is not None:
                self.flush_pending_out(fd, rest)
            return
        if fd < len(self.alive) and self.alive[fd]:
            kind = "unexpected_close" if isinstance(exc, ConnectionError) else "send_error"
            self.error(fd, kind, f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ send
    def short_write(self, fd: int, written: int) -> None:
        """The kernel took only part of the request: finish it when writable."""
        self.pending_out[fd] = self.request[written:]
        self.ep.modify(fd, select.EPOLLIN | select.EPOLLOUT)

    def flush_pending_out(self, fd: int, rest: bytes) -> None:
        try:
            n = os.write(fd, rest)
        except BlockingIOError:
            return
        except OSError as exc:
            self.io_error(fd, exc)
            return
        if n < len(rest):
            self.pending_out[fd] = rest[n:]
        else:
            del self.pending_out[fd]
            self.ep.modify(fd, select.EPOLLIN)

    def send(self, fd: int, now: int) -> None:
        self.sent[fd] = now
        self.transmit(fd)

    def transmit(self, fd: int) -> None:
        try:
            n = os.write(fd, self.request)
        except OSError as exc:
            self.io_error(fd, exc)
            return
        if n != len(self.request):
            self.short_write(fd, n)

    # ------------------------------------------------------------- reconnect
    def reconnect(self, fd: int, now: int, carried_ns: int) -> None:
        """The server closed fd cleanly: open the slot's next connection."""
        intended = self.intended[fd]
        self.drop(fd)
        if not (self.sending or carried_ns):
            return  # after the window with nothing outstanding: the close stands
        err = self.reconnector.start(now, carried_ns, intended)
        if err:
            self.reconnect_failed(err)

    def reconnect_failed(self, err: int) -> None:
        kind = connect_error_kind(err)
        self.run_connect_errors[kind] = self.run_connect_errors.get(kind, 0) + 1
        name = errno.errorcode.get(err, str(err))
        self.count_error("unexpected_close", f"server closed the connection; reconnect: {name}")

    def connect_done(self, fd: int, exc: OSError | None) -> None:
        slot, err = self.reconnector.finish(fd, exc)
        if err:
            self.reconnect_failed(err)
        else:
            self.adopt(fd, slot, time.monotonic_ns())

    def adopt(self, fd: int, slot: PendingSlot, now: int) -> None:
        """A slot's new connection is up: carry on where the old one stopped."""
        self.connections_opened += 1
        self.reconnects += 1
        if self.interval_label >= 0:
            self.reconnects_measured += 1
        if fd >= len(self.alive):  # grown in place: the hot loops hold these lists
            grow = fd + 1 - len(self.alive)
            self.alive.extend(bytes(grow))
            self.sent.extend([0] * grow)
            self.intended.extend([0] * grow)
        self.alive[fd] = 1
        self.active_fds.append(fd)
        self.intended[fd] = slot.intended_ns
        if slot.carried_ns:
            self.sent[fd] = slot.carried_ns
            self.transmit(fd)
        elif not self.sending:
            self.sent[fd] = 0
        elif self.cfg.mode == "closed":
            self.sent[fd] = slot.start_ns
            self.transmit(fd)
        elif slot.intended_ns <= now:
            self.lag.append(now - slot.intended_ns)
            self.send(fd, now)
        else:
            self.sent[fd] = 0
            heapq.heappush(self.heap, (slot.intended_ns, fd))

    # ------------------------------------------------------------- slow path
    def slow(self, fd: int, data: bytes, t: int) -> None:
        """Everything the hot path does not handle: ticks, split reads, errors, new headers."""
        if self.timer is not None and fd == self.timer.fd:
            self.timer.drain()
            return
        if self.tick_i < len(self.ticks) and t >= self.tick_ns:
            self.cross_ticks(t)
        if fd in self.reconnector.pending:
            self.connect_done(fd, None)
            return
        if fd >= len(self.alive) or not self.alive[fd]:
            return
        rest = self.pending_out.get(fd)
        if rest is not None:  # a large request still being written: keep it moving
            self.flush_pending_out(fd, rest)
            if not self.alive[fd]:
                return
        if not data:
            if fd in self.partial:
                self.error(fd, "unexpected_close", "server closed the connection mid-answer")
            else:
                self.reconnect(fd, t, self.sent[fd])
            return
        buf = self.partial.pop(fd, b"") + data
        if not self.sent[fd]:
            self.error(fd, "bad_response", f"{len(buf)} unsolicited bytes")
            return
        if self.cfg.protocol == "echo":
            status, why = parse_echo(buf, self.request)
        else:
            status, why = parse_http(buf)
        if status == INCOMPLETE:
            self.partial[fd] = buf
            return
        if status == BAD:
            self.error(fd, "bad_response", why)
            return
        assert status == COMPLETE
        keep = True
        if self.cfg.protocol == "http":
            keep = not http_closes(buf)
            if keep:  # never the fast path's model: a closing answer must come here
                self.expected = buf
        self.complete(fd, t, keep)

    def complete(self, fd: int, t: int, keep: bool = True) -> None:
        """An answer arrived whole; ``keep`` False: the server closes after it."""
        if self.sending:
            if self.cfg.mode == "closed":
                self.lat_c.append(t - self.sent[fd])
                if keep:
                    self.send(fd, t)
                else:
                    self.reconnect(fd, t, 0)
            else:
                self.lat_c.append(t - self.intended[fd])
                self.lat_u.append(t - self.sent[fd])
                if keep:
                    self.schedule_next(fd, t)
                else:
                    self.intended[fd] += self.interval_ns
                    self.reconnect(fd, t, 0)
        else:
            self.drain_completed += 1
            self.sent[fd] = 0
            if not keep:
                self.drop(fd)

    def schedule_next(self, fd: int, t: int) -> None:
        nxt = self.intended[fd] + self.interval_ns
        self.intended[fd] = nxt
        if nxt <= t:
            self.lag.append(t - nxt)
            self.send(fd, t)
        else:
            self.sent[fd] = 0
            heapq.heappush(self.heap, (nxt, fd))

    # ------------------------------------------------------------ hot loops
    def start_sending(self, warmup_start: int) -> None:
        if self.cfg.mode == "closed":
            start = time.monotonic_ns()
            for fd in list(self.active_fds):
                self.send(fd, start)
        else:
            rate = self.plan.rate_rps or 0.0
            if self.active_fds and rate > 0:
                self.start_schedule(self.active_fds, self.intended, warmup_start)

    def loop(self) -> None:
        if self.cfg.mode == "closed":
            self.loop_closed()
        else:
            self.loop_open()

    def loop_closed(self) -> None:
        poll = self.ep.poll
        read = os.read
        write = os.write
        mono = time.monotonic_ns
        sent = self.sent
        lat_append = self.lat_c.append
        req = self.request
        reqlen = len(req)
        slow = self.slow
        expected = self.expected
        tick = self.tick_ns
        while self.sending:
            now = mono()
            if now >= tick:
                self.cross_ticks(now)
                tick = self.tick_ns
                continue
            for fd, _ev in poll((tick - now) / 1e9):
                try:
                    data = read(fd, READ_SIZE)
                    t = mono()
                    if data == expected and t < tick:
                        lat_append(t - sent[fd])
                        sent[fd] = t
                        n = write(fd, req)
                        if n != reqlen:
                            self.short_write(fd, n)
                        continue
                except OSError as exc:
                    self.io_error(fd, exc)
                    continue
                slow(fd, data, t)
                expected = self.expected
                tick = self.tick_ns

    def loop_open(self) -> None:
        poll = self.ep.poll
        read = os.read
        write = os.write
        mono = time.monotonic_ns
        heappush = heapq.heappush
        heappop = heapq.heappop
        sent = self.sent
        intended = self.intended
        alive = self.alive
        heap = self.heap
        interval = self.interval_ns
        lat_c_append = self.lat_c.append
        lat_u_append = self.lat_u.append
        lag_append = self.lag.append
        req = self.request
        reqlen = len(req)
        slow = self.slow
        timer = self.timer
        expected = self.expected
        tick = self.tick_ns
        while self.sending:
            now = mono()
            if now >= tick:
                self.cross_ticks(now)
                tick = self.tick_ns
                continue
            while heap and heap[0][0] <= now:
                due, fd = heappop(heap)
                # An entry left by a closed connection (its slot reconnected) is stale.
                if alive[fd] and intended[fd] == due and not sent[fd]:
                    lag_append(now - intended[fd])
                    self.send(fd, now)
            wake = tick
            if heap and heap[0][0] < wake:
                wake = heap[0][0]
                if timer is not None and timer.armed_ns != wake:
                    timer.arm(wake)
            # epoll rounds its timeout up to whole ms; the timerfd wakes us on time.
            for fd, _ev in poll(max(0.0, (wake - now) / 1e9)):
                try:
                    data = read(fd, READ_SIZE)
                    t = mono()
                    if data == expected and t < tick:
                        lat_c_append(t - intended[fd])
                        lat_u_append(t - sent[fd])
                        nxt = intended[fd] + interval
                        intended[fd] = nxt
                        if nxt <= t:
                            lag_append(t - nxt)
                            sent[fd] = t
                            n = write(fd, req)
                            if n != reqlen:
                                self.short_write(fd, n)
                        else:
                            sent[fd] = 0
                            heappush(heap, (nxt, fd))
                        continue
                except OSError as exc:
                    self.io_error(fd, exc)
                    continue
                slow(fd, data, t)
                expected = self.expected
                tick = self.tick_ns

    def drain(self) -> None:
        limit = min(self.cfg.request_timeout_s, 1.0 if self.stop_requested else 30.0)
        deadline = time.monotonic_ns() + int(limit * 1e9)
        mono = time.monotonic_ns
        while self.inflight() and mono() < deadline:
            for fd, _ev in self.ep.poll(0.05):
                try:
                    data = os.read(fd, READ_SIZE)
                except OSError as exc:
                    self.io_error(fd, exc)
                    continue
                self.slow(fd, data, mono())
        self.check_timeouts(mono())

    def close_active(self) -> None:
        for fd in list(self.active_fds):
            self.drop(fd)
        self.reconnector.close_all()


__all__ = ["KeepAliveWorker"]
