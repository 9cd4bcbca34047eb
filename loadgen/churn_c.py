"""CoreChurnWorker: the churn worker with its loop in C (loadgen._cload.ChurnCore).

Everything but the loop is ChurnWorker's: ticks, accounting, the drain and
the report. Between two ticks the core opens, writes, reads and closes the
slots' connections itself (connect, request, one answer, close, the next)
with the GIL released, and records latency, uncorrected latency and send lag
as loadgen.churn defines them. What needs Python comes back as events: a
failed connect or request (counted here, the slot rescheduled by
``next_for_slot`` as in the Python loop), a connection handed over with its
bytes (an answer the core cannot classify alone, or one completed after the
tick), or an event on a descriptor Python owns. Slots that Python
reschedules go back to the core (``start`` queues them, the heap is moved
over before each run); at the end of the window every connection the core
still holds is handed to Python's drain.
"""

from __future__ import annotations

import array
import os
import socket
import time
from multiprocessing.connection import Connection
from types import ModuleType
from typing import Any

from loadgen.churn import WAITING, ChurnWorker, _Conn
from loadgen.config import LoadConfig
from loadgen.core import CoreCounts
from loadgen.plan import WorkerPlan

CONNECT_FAILED, FAILED, ADOPT, FOREIGN = 0, 1, 2, 3
EOF_DETAIL = "server closed before a complete answer"


class CoreChurnWorker(CoreCounts, ChurnWorker):
    """ChurnWorker whose loop between ticks is the compiled core's."""

    core = "c"
    use_timerfd = False

    def __init__(
        self, cfg: LoadConfig, plan: WorkerPlan, conn: Connection, module: ModuleType
    ) -> None:
        super().__init__(cfg, plan, conn)
        self.module = module
        self.engine: Any = None
        self.queued: list[int] = []  # slots to open at the core's next run

    def start_sending(self, warmup_start: int) -> None:
        super().start_sending(warmup_start)  # closed loop: start() queues every slot
        self.slot_intended = array.array("q", self.slot_intended or [0] * self.plan.active)
        self.engine = self.module.ChurnCore(
            epoll_fd=self.ep.fileno(),
            request=self.request,
            http=self.cfg.protocol == "http",
            open_loop=self.cfg.mode == "open",
            address=self.plan.address,
            port=self.cfg.port,
            sources=tuple(self.plan.sources),
            source_start=self.source_i,
            interval_ns=self.interval_ns,
        )

    def start(self, slot: int, now: int) -> None:
        """Open the slot's next connection: in the core, at its next run."""
        self.queued.append(slot)

    def inflight(self) -> int:
        return len(self.conns) + (self.engine.inflight() if self.engine is not None else 0)

    def check_timeouts(self, now: int) -> None:
        super().check_timeouts(now)
        if self.engine is not None:
            connect_limit = int(self.cfg.connect_timeout_s * 1e9)
            request_limit = int(self.cfg.request_timeout_s * 1e9)
            self.handle(self.engine.expire(now, connect_limit, request_limit), now)

    def loop(self) -> None:
        engine = self.engine
        mono = time.monotonic_ns
        try:
            while self.sending:
                now = mono()
                if now >= self.tick_ns:
                    self.cross_ticks(now)
                    continue
                for due, slot in self.heap:
                    engine.schedule(due, slot)
                self.heap.clear()
                if self.queued:
                    engine.start(self.queued)
                    self.queued.clear()
                _, events = engine.run(self.slot_intended, self.tick_ns)
                self.connections_opened += engine.take_opened()
                self.handle(events, mono())
        finally:
            # The drain is Python's: it takes every connection the core still holds.
            self.queued.clear()
            self.handle(engine.export(), mono())
            self.connections_opened += engine.take_opened()

    def handle(self, events: list[tuple], now: int) -> None:
        """The core's events, handled as the Python loop handles the same situations."""
        for event in events:
            kind = event[0]
            if kind == CONNECT_FAILED:
                self.connect_failed(event[1], event[2], now)
            elif kind == FAILED:
                _, slot, what, err = event
                if what == "timeout":
                    detail = f"no answer within {self.cfg.request_timeout_s} s"
                elif err:
                    exc = OSError(err, os.strerror(err))
                    detail = f"{type(exc).__name__}: {exc}"
                else:
                    detail = EOF_DETAIL
                self.count_error(what, detail)
                self.next_for_slot(slot, now, failed=True)
            elif kind == ADOPT:
                _, fd, slot, start_ns, sent_ns, phase, written, data, t = event
                conn = _Conn(socket.socket(fileno=fd), slot, start_ns)
                conn.sent_ns = sent_ns
                conn.phase = phase
                conn.rest = self.request[written:] if phase != WAITING else b""
                self.conns[fd] = conn
                if data:
                    self.receive(fd, conn, data, t)
            else:
                self.on_event(event[1], event[2])


__all__ = ["CoreChurnWorker"]
