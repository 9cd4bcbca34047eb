"""CoreKeepAliveWorker: the keep-alive worker with its hot loop in C (loadgen._cload).

Everything but the loop is KeepAliveWorker's: connection set-up, ticks,
accounting, timeouts, reconnects, the drain and the report. Between two ticks
the core runs the closed or open loop on the worker's own epoll and on the
worker's own per-descriptor state (``alive``, and ``sent`` and ``intended`` as
array('q') so the core writes them in place), with the GIL released. What it
cannot decide alone it hands back as (fd, partial, data, t, rest, errno), and
this class puts the connection into the state the Python loop would have had
(``partial``, ``pending_out``) and calls the same slow path on the same bytes:
a close, a ``Connection: close`` answer, a bad or unusual answer, a reconnect
in flight, an answer that arrives after the tick. Latencies stay in the core
until the tick takes them as {us: count} (``take_counts``) into the same
HdrHistograms.

Open loop: the core keeps its own heap of intended send times, rebuilt from
the state at each run, and times each send by sleeping in epoll until
shortly before it, napping and spinning the rest (the measurement is in
loadgen/c/core.c); the Python loop's
timerfd is not used. The spin is waiting, like the closed loop's polling: it is
in ``polled_s`` and out of the busy fraction.

A tick's work in Python (taking the counts, the tick message, the control poll) took
0.26-0.65 ms in a debug build that logged it (2026-12-06), and a send due meanwhile went
out that late. So an open-loop run goes on past its tick, for up to TICK_ROOM_NS, to make
the send due by then, and returns right after it; the core marks where the tick fell,
and the tick takes only what came before it. The last tick (the window's end) is never
passed: no request is sent after the window.

Closed loop: the core polls for answers up to ``loadgen.core.wanted_poll_ns()``
before blocking (the measurement is in loadgen/c/core.c). The time it spent polling
inside the window is the worker's ``polled_s``: waiting, so the busy fraction and the
CPU per request leave it out (loadgen.merge).
"""

from __future__ import annotations

import array
import os
import time
from multiprocessing.connection import Connection
from types import ModuleType
from typing import Any

from loadgen.config import LoadConfig
from loadgen.core import CoreCounts, wanted_poll_ns
from loadgen.keepalive import KeepAliveWorker
from loadgen.plan import WorkerPlan
from loadgen.worker_base import READ_SIZE

# Longer than a tick's work (0.26-0.65 ms, above): the send that follows the tick's return
# is then at least this far off. At rates where sends are closer than this, a tick delays
# some of them whatever the room.
TICK_ROOM_NS = 1_000_000


class CoreKeepAliveWorker(CoreCounts, KeepAliveWorker):
    """KeepAliveWorker whose loop between ticks is the compiled core's."""

    core = "c"
    use_timerfd = False

    def __init__(
        self, cfg: LoadConfig, plan: WorkerPlan, conn: Connection, module: ModuleType
    ) -> None:
        super().__init__(cfg, plan, conn)
        self.module = module
        self.engine: Any = None  # the module's KeepAliveCore, made when sending starts
        self.sent = array.array("q")
        self.intended = array.array("q")
        # Closed loop only (the open loop spins before its sends instead); read here, before
        # any connection, so a bad value fails the worker at once.
        self.poll_ns = wanted_poll_ns() if cfg.mode != "open" else 0

    def after_connect(self) -> None:
        super().after_connect()
        self.sent = array.array("q", self.sent)
        self.intended = array.array("q", self.intended)

    def start_sending(self, warmup_start: int) -> None:
        super().start_sending(warmup_start)  # sets interval_ns in open loop
        self.engine = self.module.KeepAliveCore(
            epoll_fd=self.ep.fileno(),
            request=self.request,
            http=self.cfg.protocol == "http",
            open_loop=self.cfg.mode == "open",
            interval_ns=self.interval_ns,
            poll_ns=self.poll_ns,
        )

    def drop(self, fd: int) -> None:
        super().drop(fd)
        if self.engine is not None:
            self.engine.forget(fd)

    def loop(self) -> None:
        engine = self.engine
        mono = time.monotonic_ns
        try:
            while self.sending:
                now = mono()
                if now >= self.tick_ns:
                    self.cross_ticks(now)
                    continue
                self.hand_to_core()
                _, events = engine.run(
                    self.alive, self.sent, self.intended, self.tick_ns, room_ns=self.tick_room()
                )
                for fd, partial, data, t, rest, err in events:
                    self.take_back(fd, partial, data, t, rest, err)
        finally:
            # The drain is Python's: it takes the bytes the core still holds.
            for fd, (partial, rest) in engine.export().items():
                if partial is not None:
                    self.partial[fd] = partial
                if rest is not None:
                    self.pending_out[fd] = rest

    def tick_room(self) -> int:
        """How long the core may go on past the next tick to make a send due by then: open
        loop only, and never past the window's end."""
        last = self.tick_i >= len(self.ticks) - 1
        return TICK_ROOM_NS if self.cfg.mode == "open" and not last else 0

    def hand_to_core(self) -> None:
        """Bytes the slow path left with Python go to the core; its own heap replaces ours."""
        for fd, buf in self.partial.items():
            self.engine.set_partial(fd, buf)
        self.partial.clear()
        for fd, rest in self.pending_out.items():
            self.engine.set_out(fd, rest)
        self.pending_out.clear()
        self.heap.clear()

    def take_back(
        self, fd: int, partial: bytes | None, data: bytes | None, t: int, rest: bytes | None,
        err: int,
    ) -> None:  # fmt: skip
        """One event the core handed back: the Python loop's handling of it."""
        if rest is not None:
            self.pending_out[fd] = rest
        if partial is not None:
            self.partial[fd] = partial
        if err:
            self.io_error(fd, OSError(err, os.strerror(err)))
            return
        if data is None:  # not one of the core's connections (a reconnect in flight)
            try:
                data = os.read(fd, READ_SIZE)
            except OSError as exc:
                self.io_error(fd, exc)
                return
            t = time.monotonic_ns()
        self.slow(fd, data, t)


__all__ = ["CoreKeepAliveWorker"]
