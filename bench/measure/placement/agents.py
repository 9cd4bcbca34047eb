"""The agents a Dask cluster hosts for a run: one server agent, one load agent per load host.

They are Dask *actors* (``client.submit(ServerAgent, actor=True, ...)``), placed
by worker resources (``server=1`` on the machine under test, ``load=1`` on the
load machines). Actors rather than long-running tasks because a trial is a
conversation with state on the host: start a server and keep its process,
read it at two instants, stop it; start load workers, keep their pipes, start
them at an agreed instant, release them once the server has been read. A task
cannot be talked to while it runs (it could only poll queues through the
scheduler), and an actor's calls go straight from bench to the worker, without
the scheduler's hop, which also keeps the clock round trips short. Actors are
not resilient (a dead worker loses its actor); that is what is wanted here: a
lost host fails its trials with the reason instead of being quietly replaced.

Dask runs an actor's methods one at a time on the worker's single actor thread
(``async def`` ones on its event loop), so nothing here blocks for longer than
the step it was asked for: the instants that matter (the server's window edges,
the load workers' CPU readings) are kept by the agents' own threads, on the
host's own CLOCK_MONOTONIC, at times bench converted with the measured offset.

This module needs no Dask: the agents are plain classes, tested as such.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from bench.measure.placement import Edge, LocalServer
from bench.measure.placement.leash import Leash
from loadgen.config import LoadConfig
from loadgen.errors import LimitsTooLow, WorkerFailed
from loadgen.plan import WORKER_FD_OVERHEAD, WorkerPlan, fd_hard_limit
from loadgen.report import ConnectInfo, CpuUsage, WorkerReport
from loadgen.run import WorkerPool, cpu_delta, sleep_until, worker_cpu_times
from servers.config import ServerConfig

# Extra time a scheduled edge may take to appear before the caller gives up.
EDGE_WAIT_MARGIN_S = 10.0


@dataclass(frozen=True)
class HostLoadReports:
    """What one load host hands back after the window, for loadgen.merge."""

    reports: list[WorkerReport]
    cpu: dict[int, CpuUsage]  # by global worker index, over the window
    missing_workers: list[int]  # global indexes of workers that sent no report
    sources: list[str]


def _sleep_to(deadline_ns: int) -> None:
    remaining = (deadline_ns - time.monotonic_ns()) / 1e9
    if remaining > 0:
        time.sleep(remaining)


class HostAgent:
    """What every agent answers: its clocks, its host's facts; and one leash for its children."""

    def __init__(self) -> None:
        self._leash: Leash | None = None
        self._finalizer: weakref.finalize | None = None

    async def clock(self) -> tuple[int, int]:
        """This host's (CLOCK_MONOTONIC, wall) in ns; ``async`` so it runs on the worker's
        event loop, not behind another call on the actor thread."""
        return time.monotonic_ns(), time.time_ns()

    def facts(self, max_connections: int = 0) -> dict[str, Any]:
        """The host: name, machine metadata (as run.json's) and the doctor's checks."""
        from bench.measure.machine import git_state, machine_metadata
        from bench.measure.machine.doctor import run_checks

        return {
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "machine": machine_metadata(),
            "git": git_state(),
            "checks": run_checks(max_connections) if max_connections else [],
        }

    def leash(self) -> Leash:
        if self._leash is None:
            self._leash = Leash()
            # If Dask drops the actor (bench's client went away), the leash ends the rest.
            self._finalizer = weakref.finalize(self, self._leash.release_pipe)
        return self._leash

    def close(self) -> None:
        """End everything this agent started; the leash last."""
        if self._leash is not None:
            self._leash.close()
            self._leash = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None


class ServerAgent(HostAgent):
    """Starts, pins, reads and stops the server on the machine under test."""

    def __init__(self) -> None:
        super().__init__()
        self._server: Any = None
        self._handle: LocalServer | None = None
        self._edges: dict[str, Edge] = {}
        self._edges_ready: dict[str, threading.Event] = {}
        self._edges_error: str | None = None
        self._thread: threading.Thread | None = None

    def start(self, config: ServerConfig) -> dict[str, Any]:
        """Start the server (the previous one is stopped first); return what bench needs."""
        from servers.launch import start_server

        self.stop()
        allowed = sorted(os.sched_getaffinity(0))
        if config.cpu is not None and config.cpu not in allowed:
            # The CPU bench chose is its own machine's numbering; on this host take the first.
            config = dataclasses.replace(config, cpu=allowed[0])
        leash = self.leash()
        self._server = start_server(config)
        pids = [self._server.pid, *self._server.ready_info.get("worker_pids", [])]
        leash.add(*pids)
        self._handle = LocalServer(self._server)
        return {
            "pid": self._server.pid,
            "port": self._server.port,
            "host": self._server.host,
            "cpu": config.cpu,
            "ready_info": dict(self._server.ready_info),
        }

    def _require(self) -> LocalServer:
        if self._handle is None:
            raise RuntimeError("no server is running on this agent")
        return self._handle

    def edge(self, with_process: bool = True) -> Edge:
        return self._require().edge(with_process=with_process)

    def schedule_edges(self, start_ns: int, end_ns: int) -> None:
        """Read the server at these two instants of this host's CLOCK_MONOTONIC."""
        handle = self._require()
        self._edges = {}
        self._edges_error = None
        self._edges_ready = {"start": threading.Event(), "end": threading.Event()}

        def read() -> None:
            try:
                for name, at in (("start", start_ns), ("end", end_ns)):
                    _sleep_to(at)
                    self._edges[name] = handle.edge()
                    self._edges_ready[name].set()
            except Exception as exc:  # reported by scheduled_edge
                self._edges_error = f"{type(exc).__name__}: {exc}"
                for event in self._edges_ready.values():
                    event.set()

        self._thread = threading.Thread(target=read, name="server-edges", daemon=True)
        self._thread.start()

    def scheduled_edge(self, name: str, timeout_s: float) -> Edge:
        """The edge read at its scheduled instant (waits for it)."""
        event = self._edges_ready.get(name)
        if event is None:
            raise RuntimeError(f"no {name!r} edge was scheduled")
        if not event.wait(timeout_s + EDGE_WAIT_MARGIN_S):
            raise TimeoutError(f"the server's {name} edge was not read in time")
        if name not in self._edges:
            raise RuntimeError(f"reading the server's {name} edge failed: {self._edges_error}")
        return self._edges[name]

    def exit_reason(self) -> str | None:
        if self._handle is None:
            return None
        return self._handle.exit_reason()

    def stderr_tail(self, limit: int = 2000) -> str | None:
        return None if self._handle is None else self._handle.stderr_tail(limit)

    def stop(self) -> int | None:
        """Stop the server (SIGTERM by PID, then SIGKILL); its exit status."""
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        server, self._server, self._handle = self._server, None, None
        if server is None:
            return None
        try:
            return int(server.stop())
        finally:
            if self._leash is not None:
                self._leash.drop(server.pid, *server.ready_info.get("worker_pids", []))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        super().close()


class LoadAgent(HostAgent):
    """Runs this host's share of the load generator's workers for one trial at a time."""

    def __init__(self) -> None:
        super().__init__()
        self._workers: WorkerPool | None = None
        self._plans: list[WorkerPlan] = []
        self._thread: threading.Thread | None = None
        self._cpu: dict[int, CpuUsage] = {}
        self._window_error: BaseException | None = None

    def prepare(
        self, cfg: LoadConfig, plans: list[WorkerPlan], budget_s: float
    ) -> list[ConnectInfo]:
        """Start one worker per plan (pinned to this host's CPUs) and wait until connected."""
        self.abort()
        hard = fd_hard_limit()
        biggest = max(p.idle + p.active for p in plans)
        if biggest + WORKER_FD_OVERHEAD > hard:
            raise LimitsTooLow(
                f"RLIMIT_NOFILE hard limit on {socket.gethostname()} is {hard:,}; a worker with "
                f"{biggest:,} connections needs {biggest + WORKER_FD_OVERHEAD:,}: raise it there "
                "or add load hosts"
            )
        cpus = sorted(os.sched_getaffinity(0))
        self._plans = [dataclasses.replace(p, cpu=cpus[i % len(cpus)]) for i, p in enumerate(plans)]
        self._cpu, self._window_error = {}, None
        workers = self._workers = WorkerPool()
        leash = self.leash()
        try:
            workers.start(cfg, self._plans)
        finally:
            leash.add(*workers.pids)
        connected = workers.collect("connected", ConnectInfo, time.monotonic() + budget_s)
        if len(connected) < len(self._plans):
            raise WorkerFailed(
                f"only {len(connected)} of {len(self._plans)} workers on "
                f"{socket.gethostname()} finished connecting within {budget_s:.0f} s"
            )
        return [connected[i] for i in sorted(connected)]

    def go(self, warmup_ns: int, measure_start_ns: int, measure_end_ns: int) -> float:
        """Start the workers at these instants of this host's clock; returns how late the
        word arrived (seconds past the warm-up's start; negative: in time)."""
        workers = self._require()
        late_s = (time.monotonic_ns() - warmup_ns) / 1e9
        workers.send_all(("go", warmup_ns, measure_start_ns, measure_end_ns))
        plans = self._plans

        def window() -> None:
            try:
                sleep_until(measure_start_ns, workers, None)
                start = worker_cpu_times(workers.pids)
                sleep_until(measure_end_ns, workers, None)
                delta = cpu_delta(start, worker_cpu_times(workers.pids))
                self._cpu = {plans[i].index: usage for i, usage in delta.items()}
            except BaseException as exc:  # a worker's error; re-raised by finish()
                self._window_error = exc

        self._thread = threading.Thread(target=window, name="load-window", daemon=True)
        self._thread.start()
        return late_s

    def _require(self) -> WorkerPool:
        if self._workers is None:
            raise RuntimeError("no load workers: call prepare first")
        return self._workers

    def finish(self, result_timeout_s: float) -> HostLoadReports:
        """After the server's end edge: release the workers, collect their reports, reap."""
        workers = self._require()
        try:
            if self._thread is not None:
                self._thread.join()
                self._thread = None
            if self._window_error is not None:
                raise self._window_error
            workers.send_all(("release",))
            reports = workers.collect("result", WorkerReport, time.monotonic() + result_timeout_s)
        finally:
            self._reap()
        missing = sorted(p.index for i, p in enumerate(self._plans) if i not in reports)
        return HostLoadReports(
            reports=[reports[i] for i in sorted(reports)],
            cpu=self._cpu,
            missing_workers=missing,
            sources=list(self._plans[0].sources) if self._plans else [],
        )

    def _reap(self) -> None:
        workers, self._workers = self._workers, None
        if workers is None:
            return
        try:
            workers.reap()
        finally:
            if self._leash is not None:
                self._leash.drop(*workers.pids)

    def abort(self) -> None:
        """Stop and reap this host's workers, whatever state they are in."""
        if self._thread is not None:
            with contextlib.suppress(Exception):
                self._require().send_all(("stop",))
            self._thread.join(timeout=5.0)
            self._thread = None
        self._reap()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.abort()
        super().close()
