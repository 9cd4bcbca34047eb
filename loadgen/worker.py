"""One load generator worker process: a single-threaded, non-blocking epoll loop.

Life of a worker (the parent drives it over a multiprocessing Pipe):

1. open its share of idle then active connections (non-blocking connects at
   the configured rate, bounded number in flight), then send ``("connected",
   info)`` and wait;
2. on ``("go", warmup_start_ns, measure_start_ns, measure_end_ns)`` (absolute
   CLOCK_MONOTONIC times, shared by all processes) run warm-up then the
   measured window, then stop sending and drain outstanding answers;
3. check the idle connections are still alive, send ``("result", dict)``,
   close everything and exit. ``("stop",)`` at any time ends the run early;
   the result is then marked interrupted.

Hot path cost per request: one os.read, one os.write, one clock read and a
list append; epoll_wait is amortised over all ready connections. Each active
socket is registered once for EPOLLIN and never modified (no epoll_ctl per
request). Idle connections are kept as bare fds in an array('i').
"""

from __future__ import annotations

import array
import contextlib
import errno
import heapq
import os
import resource
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from loadgen import histogram as hdr
from loadgen.config import LoadConfig
from loadgen.plan import WorkerPlan
from loadgen.protocols import BAD, COMPLETE, INCOMPLETE, build_request, parse_echo, parse_http

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
READ_SIZE = 65536
MAX_PENDING_CONNECTS = 512
CONNECT_ERROR_KINDS = ("ECONNREFUSED", "EMFILE", "EADDRNOTAVAIL", "ETIMEDOUT", "ECONNRESET")
REFUSED_ABORT_AFTER = 64  # consecutive refusals with no success: nothing listens, stop trying
WARMUP = -1
DRAIN = -2
MAX_ERROR_SAMPLES = 5
# The time series has at most this many intervals; longer runs use wider intervals.
MAX_TIMESERIES_POINTS = 600


def connect_error_kind(err: int) -> str:
    name = errno.errorcode.get(err, "other")
    if name == "ENFILE":
        return "EMFILE"
    if name in ("EPIPE", "ECONNABORTED"):
        return "ECONNRESET"
    return name if name in CONNECT_ERROR_KINDS else "other"


def timeseries_interval_s(measure_s: float) -> int:
    return max(1, int(-(-measure_s // MAX_TIMESERIES_POINTS)))


class Worker:
    """State of one worker; methods run inside the worker process only."""

    def __init__(self, cfg: LoadConfig, plan: WorkerPlan, conn: Connection) -> None:
        self.cfg = cfg
        self.plan = plan
        self.conn = conn
        self.ep = select.epoll()
        self.request = build_request(cfg)
        # For echo the answer is the request; for http the last complete valid answer.
        self.expected: bytes | None = self.request if cfg.protocol == "echo" else None
        self.idle_fds = array.array("i")
        self.active_fds: list[int] = []
        self.alive = bytearray()  # alive[fd] == 1 for a live active connection
        self.sent: list[int] = []  # sent[fd]: actual send time of the outstanding request, 0 = none
        self.intended: list[int] = []  # open loop: intended send time of the current request
        self.partial: dict[int, bytes] = {}
        self.pending_out: dict[int, bytes] = {}
        self.connect_errors = dict.fromkeys((*CONNECT_ERROR_KINDS, "other"), 0)
        self.errors = {"bad_response": 0, "unexpected_close": 0, "timeout": 0, "send_error": 0}
        self.error_samples: list[str] = []
        self.stop_requested = False
        self.sending = False
        self.lat_c: list[int] = []  # corrected latencies (ns) since the last tick
        self.lat_u: list[int] = []  # uncorrected (open loop only)
        self.hist_c = hdr.new_histogram()
        self.hist_u = hdr.new_histogram()
        self.ticks: list[tuple[int, int]] = []
        self.tick_i = 0
        self.tick_ns = -1
        self.interval_label = WARMUP
        self.series: dict[int, dict[str, Any]] = {}
        self.warmup_completed = 0
        self.drain_completed = 0
        self.measured_completed = 0
        self.measured_errors = 0
        self.inflight_at_measure_start = 0
        self.inflight_at_measure_end = 0
        self.clamped = 0
        self.heap: list[tuple[int, int]] = []
        self.interval_ns = 0
        self.timer = None
        self.phase_ns: dict[str, int] = {}
        self.rss_after_connect = 0
        self.connections_opened = 0  # TCP connections established over the whole run

    def upfront_active(self) -> int:
        """Active connections to open before the run (churn opens them per request)."""
        return self.plan.active

    # ----------------------------------------------------------------- setup
    def setup_process(self) -> None:
        if self.plan.cpu is not None:
            os.sched_setaffinity(0, {self.plan.cpu})
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def poll_control(self) -> None:
        """Non-blocking check for a stop message from the parent (called once per tick)."""
        try:
            while self.conn.poll():
                msg = self.conn.recv()
                if msg[0] == "stop":
                    self.stop_requested = True
        except (EOFError, OSError):
            self.stop_requested = True  # parent gone: stop

    # --------------------------------------------------------------- connect
    def connect_all(self) -> dict[str, Any]:
        """Open idle then active connections; return counts for the start barrier.

        Idle first, then active: on the server the active connections then
        get the highest descriptor numbers, the realistic worst case for select.
        """
        cfg, plan = self.cfg, self.plan
        family = socket.AF_INET6 if ":" in plan.address else socket.AF_INET
        target = (plan.address, cfg.port)
        total = plan.idle + self.upfront_active()
        sources = plan.sources
        rate_ns = None
        if cfg.connect_rate is not None:
            rate_ns = cfg.connect_rate / cfg.worker_count() / 1e9
        timeout_ns = int(cfg.connect_timeout_s * 1e9)
        pending: dict[int, tuple[int, bool]] = {}
        ep = self.ep
        mono = time.monotonic_ns
        start = mono()
        started = 0
        refused_streak = 0
        established = 0
        give_up = False
        next_timeout_scan = start + 100_000_000
        sock_type = socket.SOCK_STREAM | socket.SOCK_NONBLOCK
        while (started < total and not give_up) or pending:
            now = mono()
            allowed = total if rate_ns is None else min(total, int((now - start) * rate_ns) + 1)
            while (
                started < allowed
                and len(pending) < MAX_PENDING_CONNECTS
                and not give_up
                and not self.stop_requested
            ):
                is_active = started >= plan.idle
                index = plan.first_connection_index + started
                started += 1
                try:
                    sock = socket.socket(family, sock_type)
                except OSError as exc:
                    self.connect_errors[connect_error_kind(exc.errno or 0)] += 1
                    give_up = exc.errno in (errno.EMFILE, errno.ENFILE)
                    continue
                try:
                    if is_active:
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    if sources:
                        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                        sock.bind((sources[index % len(sources)], 0))
                    err = sock.connect_ex(target)
                except OSError as exc:
                    err = exc.errno or -1
                fd = sock.detach()
                if err in (errno.EINPROGRESS, 0):
                    ep.register(fd, select.EPOLLOUT)
                    pending[fd] = (now, is_active)
                else:
                    os.close(fd)
                    self.connect_errors[connect_error_kind(err)] += 1
                    if err == errno.ECONNREFUSED:
                        refused_streak += 1
                        give_up = established == 0 and refused_streak >= REFUSED_ABORT_AFTER
            if not pending:
                if started < total and not give_up and not self.stop_requested:
                    wait_ns = int(started / rate_ns) + start - mono() if rate_ns else 0
                    time.sleep(max(0, wait_ns) / 1e9)
                    continue
                break
            for fd, ev in ep.poll(0.05):
                _, is_active = pending.pop(fd)
                if ev & (select.EPOLLERR | select.EPOLLHUP):
                    sock = socket.socket(fileno=fd)
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or errno.ECONNRESET
                    ep.unregister(fd)
                    sock.close()
                    self.connect_errors[connect_error_kind(err)] += 1
                    if err == errno.ECONNREFUSED:
                        refused_streak += 1
                        give_up = established == 0 and refused_streak >= REFUSED_ABORT_AFTER
                    continue
                established += 1
                refused_streak = 0
                if is_active:
                    ep.modify(fd, select.EPOLLIN)
                    self.active_fds.append(fd)
                else:
                    ep.unregister(fd)
                    self.idle_fds.append(fd)
            now = mono()
            if now >= next_timeout_scan:
                next_timeout_scan = now + 100_000_000
                self.poll_control()
                if self.stop_requested:
                    give_up = True
                for fd, (t0, _) in list(pending.items()):
                    if now - t0 > timeout_ns or self.stop_requested:
                        del pending[fd]
                        ep.unregister(fd)
                        os.close(fd)
                        if not self.stop_requested:
                            self.connect_errors["ETIMEDOUT"] += 1
        duration_s = (mono() - start) / 1e9
        self.connections_opened = established
        size = max(self.active_fds, default=0) + 1
        self.alive = bytearray(size)
        for fd in self.active_fds:
            self.alive[fd] = 1
        self.sent = [0] * size
        self.intended = [0] * size
        self.rss_after_connect = _rss_bytes()
        return {
            "worker": plan.index,
            "pid": os.getpid(),
            "idle_requested": plan.idle,
            "idle_established": len(self.idle_fds),
            "active_requested": plan.active,
            "active_established": len(self.active_fds),
            "connect_errors": dict(self.connect_errors),
            "connect_duration_s": round(duration_s, 6),
            "rss_bytes_after_connect": self.rss_after_connect,
            "interrupted": self.stop_requested,
        }

    # ----------------------------------------------------------------- ticks
    def build_ticks(self, warmup_start: int, measure_start: int, measure_end: int) -> None:
        """Tick times; each closes an interval labelled WARMUP or a time-series index."""
        second = 1_000_000_000
        step = timeseries_interval_s(self.cfg.measure_s) * second
        ticks: list[tuple[int, int]] = []
        t = warmup_start
        while t + second < measure_start:
            t += second
            ticks.append((t, WARMUP))
        if measure_start > warmup_start:
            ticks.append((measure_start, WARMUP))
        t, k = measure_start, 0
        while t + step < measure_end:
            t += step
            ticks.append((t, k))
            k += 1
        ticks.append((measure_end, k))
        self.ticks = ticks
        self.tick_i = 0
        self.tick_ns = ticks[0][0]
        self.interval_label = ticks[0][1]

    def inflight(self) -> int:
        sent = self.sent
        return sum(1 for fd in self.active_fds if sent[fd])

    def cross_ticks(self, now: int) -> None:
        """Close every interval whose tick has passed: flush latencies, count, time out."""
        while self.tick_i < len(self.ticks) and now >= self.tick_ns:
            label = self.interval_label
            n = len(self.lat_c)
            if label == WARMUP:
                self.warmup_completed += n
            else:
                point = self.series.setdefault(label, {"requests": 0, "errors": 0, "hist": None})
                point["requests"] += n
                self.measured_completed += n
                per_interval = hdr.new_histogram()
                self.clamped += hdr.record_ns((self.hist_c, per_interval), self.lat_c)
                if self.cfg.mode == "open":
                    hdr.record_ns((self.hist_u,), self.lat_u)
                point["hist"] = hdr.encode(per_interval)
                try:
                    self.conn.send(("tick", self.plan.index, label, n, point["errors"]))
                except OSError:
                    self.stop_requested = True
            self.lat_c.clear()
            self.lat_u.clear()
            self.tick_i += 1
            if self.tick_i < len(self.ticks):
                self.tick_ns, self.interval_label = self.ticks[self.tick_i]
                if self.interval_label != WARMUP and label == WARMUP:
                    self.inflight_at_measure_start = self.inflight()
                    self.phase_ns["measure_start"] = now
            else:
                self.end_sending(now)
        self.check_timeouts(now)
        self.poll_control()
        if self.stop_requested and self.sending:
            self.end_sending(now)

    def end_sending(self, now: int) -> None:
        """Leave the measured window (or stop early): no new requests from here on."""
        if self.interval_label not in (WARMUP, DRAIN) and self.lat_c:
            # Stopped mid-interval: keep what the partial interval measured.
            label = self.interval_label
            point = self.series.setdefault(label, {"requests": 0, "errors": 0, "hist": None})
            point["requests"] += len(self.lat_c)
            self.measured_completed += len(self.lat_c)
            per_interval = hdr.new_histogram()
            self.clamped += hdr.record_ns((self.hist_c, per_interval), self.lat_c)
            if self.cfg.mode == "open":
                hdr.record_ns((self.hist_u,), self.lat_u)
            point["hist"] = hdr.encode(per_interval)
        elif self.interval_label == WARMUP:
            self.warmup_completed += len(self.lat_c)
        self.lat_c.clear()
        self.lat_u.clear()
        self.inflight_at_measure_end = self.inflight()
        self.phase_ns.setdefault("measure_end", now)
        self.sending = False
        self.tick_i = len(self.ticks)
        self.tick_ns = -1
        self.interval_label = DRAIN

    def check_timeouts(self, now: int) -> None:
        limit = int(self.cfg.request_timeout_s * 1e9)
        sent = self.sent
        for fd in [fd for fd in self.active_fds if sent[fd] and now - sent[fd] > limit]:
            self.error(fd, "timeout", f"no answer within {self.cfg.request_timeout_s} s")

    # ---------------------------------------------------------------- errors
    def error(self, fd: int, kind: str, detail: str) -> None:
        """Count an error on an active connection and drop the connection."""
        self.errors[kind] += 1
        label = self.interval_label
        if label >= 0:
            self.measured_errors += 1
            point = self.series.setdefault(label, {"requests": 0, "errors": 0, "hist": None})
            point["errors"] += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(f"{kind}: {detail}")
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
        if isinstance(exc, BlockingIOError | InterruptedError):
            rest = self.pending_out.get(fd)
            if rest is not None:
                self.flush_pending_out(fd, rest)
            return
        if fd < len(self.alive) and self.alive[fd]:
            kind = "unexpected_close" if isinstance(exc, ConnectionError) else "send_error"
            self.error(fd, kind, f"{type(exc).__name__}: {exc}")

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
        try:
            n = os.write(fd, self.request)
        except OSError as exc:
            self.io_error(fd, exc)
            return
        if n != len(self.request):
            self.short_write(fd, n)

    # ------------------------------------------------------------- slow path
    def slow(self, fd: int, data: bytes, t: int) -> None:
        """Everything the hot path does not handle: ticks, split reads, errors, new headers."""
        if self.timer is not None and fd == self.timer.fd:
            self.timer.drain()
            return
        if self.tick_i < len(self.ticks) and t >= self.tick_ns:
            self.cross_ticks(t)
        if fd >= len(self.alive) or not self.alive[fd]:
            return
        rest = self.pending_out.get(fd)
        if rest is not None:  # a large request still being written: keep it moving
            self.flush_pending_out(fd, rest)
        if not data:
            self.error(fd, "unexpected_close", "server closed the connection")
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
        if self.cfg.protocol == "http":
            self.expected = buf
        self.complete(fd, t)

    def complete(self, fd: int, t: int) -> None:
        if self.sending:
            if self.cfg.mode == "closed":
                self.lat_c.append(t - self.sent[fd])
                self.send(fd, t)
            else:
                self.lat_c.append(t - self.intended[fd])
                self.lat_u.append(t - self.sent[fd])
                self.schedule_next(fd, t)
        else:
            self.drain_completed += 1
            self.sent[fd] = 0

    def schedule_next(self, fd: int, t: int) -> None:
        nxt = self.intended[fd] + self.interval_ns
        self.intended[fd] = nxt
        if nxt <= t:
            self.send(fd, t)
        else:
            self.sent[fd] = 0
            heapq.heappush(self.heap, (nxt, fd))

    # ------------------------------------------------------------ hot loops
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
                _, fd = heappop(heap)
                if alive[fd]:
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
        """After the window: wait (bounded) for the answers to requests already sent."""
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

    def start_schedule(self, keys: Sequence[int], intended: list[int], warmup_start: int) -> None:
        """wrk2's constant-rate schedule: one intended send time per key (fd or slot).

        Every connection of the whole run sends once per ``interval_ns``; the
        connections are staggered evenly across workers by their global index,
        so the total rate is ``cfg.rate_rps``. A timerfd wakes the loop at the
        next intended time (epoll's millisecond timeout would add up to 1 ms).
        """
        total_rate = self.cfg.rate_rps or 1.0
        self.interval_ns = int(self.cfg.active_connections / total_rate * 1e9)
        for i, key in enumerate(keys):
            first = warmup_start + int((self.plan.first_active_index + i) / total_rate * 1e9)
            intended[key] = first
            heapq.heappush(self.heap, (first, key))
        try:
            from loadgen.timer import MonotonicTimerFd

            self.timer = MonotonicTimerFd()
            self.ep.register(self.timer.fd, select.EPOLLIN)
        except (OSError, AttributeError):
            self.timer = None

    # ------------------------------------------------------------------ run
    def run_load(self, warmup_start: int, measure_start: int, measure_end: int) -> None:
        self.build_ticks(warmup_start, measure_start, measure_end)
        now = time.monotonic_ns()
        if warmup_start > now:
            time.sleep((warmup_start - now) / 1e9)
        self.phase_ns["warmup_start"] = time.monotonic_ns()
        if measure_start == warmup_start:
            self.phase_ns["measure_start"] = warmup_start
        self.sending = True
        if self.cfg.mode == "closed":
            start = time.monotonic_ns()
            for fd in list(self.active_fds):
                self.send(fd, start)
            self.loop_closed()
        else:
            rate = self.plan.rate_rps or 0.0
            if self.active_fds and rate > 0:
                self.start_schedule(self.active_fds, self.intended, warmup_start)
            self.loop_open()
        if self.sending:
            self.end_sending(time.monotonic_ns())
        self.drain()
        self.phase_ns["drain_end"] = time.monotonic_ns()

    def idle_alive(self) -> int:
        """Idle connections neither closed nor reset by the server (EAGAIN on read)."""
        alive = 0
        for fd in self.idle_fds:
            try:
                if os.read(fd, 1):
                    alive += 1  # unsolicited data, but the connection is open
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        return alive

    def result(self) -> dict[str, Any]:
        closed_loop = self.cfg.mode == "closed"
        sent_measured = (
            self.measured_completed + self.inflight_at_measure_end - self.inflight_at_measure_start
        )
        return {
            "worker": self.plan.index,
            "pid": os.getpid(),
            "cpu": self.plan.cpu,
            "idle_requested": self.plan.idle,
            "idle_established": len(self.idle_fds),
            "idle_alive_at_end": self.idle_alive(),
            "active_requested": self.plan.active,
            "active_alive_at_end": len(self.active_fds),
            "requests": self.measured_completed,
            "requests_sent": sent_measured,
            "connections_opened": self.connections_opened,
            "run_connect_errors": {},
            "warmup_requests": self.warmup_completed,
            "drain_requests": self.drain_completed,
            "requests_total": self.warmup_completed
            + self.measured_completed
            + self.drain_completed,
            "unanswered_at_end": self.inflight(),
            "errors": dict(self.errors),
            "errors_measured": self.measured_errors,
            "error_samples": self.error_samples,
            "latency_clamped": self.clamped,
            "hist_corrected": hdr.encode(self.hist_c),
            "hist_uncorrected": hdr.encode(self.hist_c if closed_loop else self.hist_u),
            "series": {str(k): v for k, v in self.series.items()},
            "phase_ns": self.phase_ns,
            "rss_bytes_after_connect": self.rss_after_connect,
            "rss_bytes_at_end": _rss_bytes(),
            "interrupted": self.stop_requested,
        }

    def close_all(self) -> None:
        for fd in self.idle_fds:
            os.close(fd)
        for fd in list(self.active_fds):
            self.drop(fd)
        if self.timer is not None:
            self.timer.close()
        self.ep.close()


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def wait_for_go(conn: Connection) -> tuple[Any, ...]:
    """Block until the parent says go or stop; stop if the parent disappears."""
    parent = os.getppid()
    while True:
        if conn.poll(0.5):
            try:
                return conn.recv()
            except (EOFError, OSError):
                return ("stop",)
        if os.getppid() != parent:
            return ("stop",)


def worker_main(cfg: LoadConfig, plan: WorkerPlan, conn: Connection) -> None:
    """Entry point of a worker process (multiprocessing target)."""
    # Ctrl-C reaches the whole process group; only the parent reacts, then tells us to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker = None
    try:
        if cfg.new_connection_per_request:
            from loadgen.churn import ChurnWorker

            worker = ChurnWorker(cfg, plan, conn)
        else:
            worker = Worker(cfg, plan, conn)
        worker.setup_process()
        conn.send(("connected", worker.connect_all()))
        msg = wait_for_go(conn)
        if msg[0] == "go" and not worker.stop_requested:
            worker.run_load(*msg[1:])
        else:
            worker.stop_requested = True
        conn.send(("result", worker.result()))
    except BaseException:
        text = traceback.format_exc()
        try:
            conn.send(("error", plan.index, text))
        except OSError:
            # The parent is gone or the channel broke: stderr is all that is left.
            print(f"loadgen worker {plan.index} failed:\n{text}", file=sys.stderr)
    finally:
        if worker is not None:
            worker.close_all()
        conn.close()
