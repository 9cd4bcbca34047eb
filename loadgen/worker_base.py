"""What every load generator worker does, whatever its loop: connect, keep time, count.

Life of a worker (the parent, loadgen.run, drives it over a socketpair; the
entry point is loadgen.worker_entry):

1. open its share of idle then active connections (loadgen.connect), then
   send ``("connected", ConnectInfo)`` and wait (messages: loadgen.report);
2. on ``("go", warmup_start_ns, measure_start_ns, measure_end_ns)`` (absolute
   CLOCK_MONOTONIC times, shared by all processes) run warm-up then the
   measured window, then stop sending and drain outstanding answers;
3. hold every connection, idle and active, open and silent until the parent
   sends ``("release",)``: it does so once its on_measure_end callback has
   returned, so the server's end-of-window snapshot sees the same connections
   as the start one and none of the teardown. The hold is bounded by
   cfg.release_timeout_s; a worker that times out closes anyway and its
   report says ``"release": "timeout"``;
4. check the idle connections are still alive, send ``("result", WorkerReport)``,
   close everything and exit. ``("stop",)`` at any time ends the run early
   (and ends a hold); the result is then marked interrupted.

WorkerBase holds the parts every loop shares: the up-front connections, the
ticks that cut the run into warm-up and measured intervals (latencies are
flushed into HdrHistograms once per tick, never per request), error
accounting, the open-loop schedule and the worker's report. A subclass
(loadgen.keepalive, loadgen.churn) supplies the request loop: how a request
is sent, answered, timed out and drained.
"""

from __future__ import annotations

import array
import heapq
import os
import resource
import select
import time
from collections import Counter
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from loadgen import histogram as hdr
from loadgen.accounting import (
    MAX_ERROR_SAMPLES,
    new_connect_errors,
    new_request_errors,
    rss_bytes,
    timeseries_interval_s,
)
from loadgen.config import LoadConfig
from loadgen.connect import count_alive, open_connections
from loadgen.plan import WorkerPlan
from loadgen.protocols import build_request
from loadgen.report import ConnectInfo, SeriesInterval, Tick, WorkerReport
from loadgen.timer import MonotonicTimerFd

READ_SIZE = 65536
WARMUP = -1
DRAIN = -2


class WorkerBase:
    """State of one worker; methods run inside the worker process only."""

    # Which loop sends and receives: "python", or "c" (the compiled core, loadgen._cload).
    core = "python"
    # Open loop: a timerfd wakes the Python loop at each intended send time.
    use_timerfd = True

    def __init__(self, cfg: LoadConfig, plan: WorkerPlan, conn: Connection) -> None:
        self.cfg = cfg
        self.plan = plan
        self.conn = conn
        self.ep = select.epoll()
        self.request = build_request(cfg)
        self.idle_fds = array.array("i")
        self.active_fds: list[int] = []  # established keep-alive connections (churn: none)
        self.connect_errors = new_connect_errors()
        self.run_connect_errors: dict[str, int] = {}  # connects that failed during the run
        self.errors = new_request_errors()
        self.error_samples: list[str] = []
        self.stop_requested = False
        self.sending = False
        self.lat_c: list[int] = []  # corrected latencies (ns) since the last tick
        self.lat_u: list[int] = []  # uncorrected (open loop only)
        self.lag: list[int] = []  # open loop: actual minus intended send time (ns), per send
        self.hist_c = hdr.new_histogram()
        self.hist_u = hdr.new_histogram()
        self.hist_lag = hdr.new_histogram()
        self.deferred = hdr.DeferredCounts()  # recorded into the three after the load
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
        # Closed loop on the core: time spent polling for answers (waiting, not work).
        self.polled_at_measure_start_ns = 0
        self.polled_measured_ns = 0
        self.clamped = 0
        self.heap: list[tuple[int, int]] = []
        self.interval_ns = 0
        self.timer: MonotonicTimerFd | None = None
        self.phase_ns: dict[str, int] = {}
        self.rss_after_connect = 0
        self.connections_opened = 0  # TCP connections established over the whole run
        self.reconnects = 0  # keep-alive slots that reconnected after a clean server close
        self.reconnects_measured = 0  # ... inside the measured window
        self.released = False
        self.release = "not_held"  # how the hold ended: parent, timeout, stop, not_held
        self.hold_s = 0.0

    # -------------------------------------------------------- for subclasses
    def upfront_active(self) -> int:
        """Active connections to open before the run (churn opens them per request)."""
        return self.plan.active

    def after_connect(self) -> None:
        """Called once the up-front connections are open."""

    def established_active(self) -> int:
        """The active connections the start barrier reports."""
        return len(self.active_fds)

    def inflight(self) -> int:
        """Requests sent and not yet answered."""
        raise NotImplementedError

    def check_timeouts(self, now: int) -> None:
        raise NotImplementedError

    def polled_ns(self) -> int:
        """Time the loop has spent polling for events so far (the Python loop never polls)."""
        return 0

    def start_sending(self, warmup_start: int) -> None:
        """The first requests (closed loop) or the schedule (open loop)."""
        raise NotImplementedError

    def loop(self) -> None:
        """Send and receive until ``self.sending`` is False (end of window or stop)."""
        raise NotImplementedError

    def drain(self) -> None:
        """After the window: wait (bounded) for the answers to requests already sent."""
        raise NotImplementedError

    def close_active(self) -> None:
        """Close every active connection."""
        raise NotImplementedError

    # ----------------------------------------------------------------- setup
    def setup_process(self) -> None:
        if self.plan.cpu is not None:
            os.sched_setaffinity(0, {self.plan.cpu})
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def poll_control(self, timeout_s: float = 0.0) -> None:
        """Read the parent's messages (stop, release); wait up to timeout_s for the first."""
        try:
            while self.conn.poll(timeout_s):
                timeout_s = 0.0
                msg = self.conn.recv()
                if msg[0] == "stop":
                    self.stop_requested = True
                elif msg[0] == "release":
                    self.released = True
        except (EOFError, OSError):
            self.stop_requested = True  # parent gone: stop

    def hold_until_release(self) -> None:
        """After the drain: keep every connection open until the parent's release.

        Nothing is read or written meanwhile. Bounded by cfg.release_timeout_s;
        a stop, or the parent's death, ends the hold too.
        """
        if self.stop_requested:
            self.release = "stop"
            return
        mono = time.monotonic
        start = mono()
        deadline = start + self.cfg.release_timeout_s
        parent = os.getppid()
        while not self.released and not self.stop_requested:
            remaining = deadline - mono()
            if remaining <= 0:
                break
            self.poll_control(min(remaining, 0.5))
            if os.getppid() != parent:
                self.stop_requested = True
        self.hold_s = mono() - start
        if self.released:
            self.release = "parent"
        elif self.stop_requested:
            self.release = "stop"
        else:
            self.release = "timeout"

    def _should_stop(self) -> bool:
        self.poll_control()
        return self.stop_requested

    def connect_all(self) -> ConnectInfo:
        """Open idle then active connections; return counts for the start barrier."""
        plan = self.plan
        opened = open_connections(self.cfg, plan, self.ep, self.upfront_active(), self._should_stop)
        self.idle_fds = opened.idle_fds
        self.active_fds = opened.active_fds
        self.connect_errors = opened.connect_errors
        self.connections_opened = len(opened.idle_fds) + len(opened.active_fds)
        self.after_connect()
        self.rss_after_connect = rss_bytes()
        return ConnectInfo(
            worker=plan.index,
            pid=os.getpid(),
            idle_requested=plan.idle,
            idle_established=len(self.idle_fds),
            active_requested=plan.active,
            active_established=self.established_active(),
            connect_errors=dict(self.connect_errors),
            connect_duration_s=round(opened.duration_s, 6),
            rss_bytes_after_connect=self.rss_after_connect,
            interrupted=self.stop_requested,
        )

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

    def take_counts(self) -> tuple[Counter[int], Counter[int], Counter[int]]:
        """The latencies gathered since the last tick as {us: count}: corrected,
        uncorrected (open loop) and send lag; the lists are emptied."""
        counts = (hdr.us_counts(self.lat_c), hdr.us_counts(self.lat_u), hdr.us_counts(self.lag))
        self.lat_c.clear()
        self.lat_u.clear()
        self.lag.clear()
        return counts

    def flush_interval(self, label: int) -> int:
        """Move the latencies gathered since the last tick to the interval's counts (recorded
        into the histograms after the load: hdr.DeferredCounts says why).

        Returns how many requests completed in the interval. Warm-up
        latencies are counted, never recorded. Send lags go by the interval
        in which the request was sent (the answer may come in the next).
        """
        lat_c, lat_u, lag = self.take_counts()
        if lag and label >= 0:
            self.deferred.add_lag(lag)
        n = sum(lat_c.values())
        if label == WARMUP:
            self.warmup_completed += n
        elif label != DRAIN and n:
            self.series_point(label)["requests"] += n
            self.measured_completed += n
            self.deferred.add(label, lat_c, lat_u)
        return n

    def record_deferred(self) -> None:
        """The counts kept since the window began, into the histograms and time series."""
        uncorrected = self.hist_u if self.cfg.mode == "open" else None
        clamped, encoded = self.deferred.record(self.hist_c, uncorrected, self.hist_lag)
        self.clamped += clamped
        for label, blob in encoded.items():
            self.series_point(label)["hist"] = blob

    def series_point(self, label: int) -> dict[str, Any]:
        return self.series.setdefault(label, {"requests": 0, "errors": 0, "hist": None})

    def cross_ticks(self, now: int) -> None:
        """Close every interval whose tick has passed: flush latencies, count, time out."""
        while self.tick_i < len(self.ticks) and now >= self.tick_ns:
            label = self.interval_label
            if label != WARMUP:
                # An empty measured interval still gets its point (and its tick message).
                self.series_point(label)
            n = self.flush_interval(label)
            if label != WARMUP:
                try:
                    errors = self.series[label]["errors"]
                    self.conn.send(("tick", Tick(self.plan.index, label, n, errors)))
                except OSError:
                    self.stop_requested = True
            self.tick_i += 1
            if self.tick_i < len(self.ticks):
                self.tick_ns, self.interval_label = self.ticks[self.tick_i]
                if self.interval_label != WARMUP and label == WARMUP:
                    self.inflight_at_measure_start = self.inflight()
                    self.polled_at_measure_start_ns = self.polled_ns()
                    self.phase_ns["measure_start"] = now
            else:
                self.end_sending(now)
        self.check_timeouts(now)
        self.poll_control()
        if self.stop_requested and self.sending:
            self.end_sending(now)

    def end_sending(self, now: int) -> None:
        """Leave the measured window (or stop early): no new requests from here on."""
        # Stopped mid-interval: keep what the partial interval measured.
        self.flush_interval(self.interval_label)
        self.inflight_at_measure_end = self.inflight()
        if "measure_start" in self.phase_ns and "measure_end" not in self.phase_ns:
            self.polled_measured_ns = self.polled_ns() - self.polled_at_measure_start_ns
        self.phase_ns.setdefault("measure_end", now)
        self.sending = False
        self.tick_i = len(self.ticks)
        self.tick_ns = -1
        self.interval_label = DRAIN

    # ---------------------------------------------------------------- errors
    def count_error(self, kind: str, detail: str) -> None:
        """Count a request error, in the measured window's series too if inside it."""
        self.errors[kind] += 1
        label = self.interval_label
        if label >= 0:
            self.measured_errors += 1
            self.series_point(label)["errors"] += 1
        self.note_sample(f"{kind}: {detail}")

    def note_sample(self, text: str) -> None:
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(text)

    # ------------------------------------------------------------ open loop
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
        if not self.use_timerfd:
            return
        try:
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
        self.start_sending(warmup_start)
        self.loop()
        if self.sending:
            self.end_sending(time.monotonic_ns())
        self.drain()
        self.phase_ns["drain_end"] = time.monotonic_ns()

    def result(self) -> WorkerReport:
        self.record_deferred()
        closed_loop = self.cfg.mode == "closed"
        sent_measured = (
            self.measured_completed + self.inflight_at_measure_end - self.inflight_at_measure_start
        )
        return WorkerReport(
            worker=self.plan.index,
            pid=os.getpid(),
            cpu=self.plan.cpu,
            idle_requested=self.plan.idle,
            idle_established=len(self.idle_fds),
            idle_alive_at_end=count_alive(self.idle_fds),
            active_requested=self.plan.active,
            active_alive_at_end=len(self.active_fds),
            requests=self.measured_completed,
            requests_sent=sent_measured,
            connections_opened=self.connections_opened,
            reconnects=self.reconnects,
            reconnects_measured=self.reconnects_measured,
            run_connect_errors=dict(self.run_connect_errors),
            warmup_requests=self.warmup_completed,
            drain_requests=self.drain_completed,
            requests_total=self.warmup_completed + self.measured_completed + self.drain_completed,
            unanswered_at_end=self.inflight(),
            errors=dict(self.errors),
            errors_measured=self.measured_errors,
            error_samples=tuple(self.error_samples),
            latency_clamped=self.clamped,
            hist_corrected=hdr.encode(self.hist_c),
            hist_uncorrected=hdr.encode(self.hist_c if closed_loop else self.hist_u),
            hist_send_lag=None if closed_loop else hdr.encode(self.hist_lag),
            series={
                k: SeriesInterval(requests=v["requests"], errors=v["errors"], hist=v["hist"])
                for k, v in self.series.items()
            },
            phase_ns=dict(self.phase_ns),
            rss_bytes_after_connect=self.rss_after_connect,
            rss_bytes_at_end=rss_bytes(),
            release=self.release,
            hold_s=round(self.hold_s, 6),
            interrupted=self.stop_requested,
            core=self.core,
            polled_s=round(self.polled_measured_ns / 1e9, 6),
        )

    def close_all(self) -> None:
        self.close_active()
        for fd in self.idle_fds:
            os.close(fd)
        self.idle_fds = array.array("i")
        if self.timer is not None:
            self.timer.close()
            self.timer = None
        self.ep.close()
