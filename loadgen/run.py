"""run_load: the parent side. Start workers, barrier, warm-up, measure, collect, reap.

Timeline (all processes share CLOCK_MONOTONIC, so the parent hands the
workers absolute deadlines instead of sending start/stop messages that would
arrive at different times):

    precheck -> spawn workers -> every worker connected (barrier)
    -> warmup_start -> measure_start [on_measure_start] -> measure_end
    (workers stop sending, drain, hold every connection) [on_measure_end]
    -> release -> workers check idle connections, report, close -> reap

The release is what keeps the window whole: a worker closes nothing until
on_measure_end has returned, so the caller's end snapshot of the server
(connections, counters, CPU) contains none of the teardown.

Workers are fresh interpreters (``python -m loadgen.worker_entry FD``), not forks:
the parent may have threads (bench, pytest plugins) and forking a threaded
process is unsafe, while multiprocessing's "spawn" would re-import the
caller's __main__ script. Config and results travel as pickled messages over a
socketpair wrapped in multiprocessing.connection.Connection, never as text.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, TypeVar

import psutil

from lifeline import child_env
from loadgen.config import LoadConfig, resolve_target
from loadgen.core import wanted_core, wanted_poll_ns
from loadgen.errors import LoadInterrupted, TargetUnreachable, WorkerFailed
from loadgen.merge import merge_results
from loadgen.plan import WorkerPlan, plan_workers
from loadgen.report import ConnectInfo, CpuUsage, Tick, WorkerReport
from loadgen.result_parts import PHASE_NAMES, Phases

# "go" is sent this long before warm-up starts, so all workers start together: a message
# over a local socketpair to a worker blocked on it arrives in well under a millisecond,
# and every trial pays the lead (0.1 s was ~12 s of a 122-trial default run).
START_LEAD_S = 0.05
REAP_TIMEOUT_S = 5.0
PRECHECK_TIMEOUT_S = 3.0
_PROJECT_ROOT = Path(__file__).resolve().parent.parent

Callback = Callable[[], Any]
Progress = Callable[[dict[str, Any]], Any]
Payload = TypeVar("Payload", ConnectInfo, WorkerReport)


def precheck_target(address: str, port: int, timeout_s: float) -> None:
    """One blocking connect before any worker starts: fail fast if nobody listens."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect((address, port))
        except ConnectionRefusedError as exc:
            raise TargetUnreachable(
                f"nothing is listening on {address}:{port} (ECONNREFUSED): start the server "
                "first, or check --host/--port"
            ) from exc
        except TimeoutError as exc:
            raise TargetUnreachable(
                f"connecting to {address}:{port} timed out after {timeout_s:.0f} s (ETIMEDOUT): "
                "is the server running and its listen backlog not full?"
            ) from exc
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
            raise TargetUnreachable(
                f"cannot connect to {address}:{port} ({name}: {exc.strerror}): check the "
                "address and that the server is up"
            ) from exc


class WorkerPool:
    """The worker processes and their pipes; reaps them whatever happens."""

    def __init__(self) -> None:
        self.procs: list[Any] = []
        self.conns: list[Connection] = []
        self.ticks: list[Tick] = []
        self.stash: dict[int, list[tuple[Any, ...]]] = {}

    def start(self, cfg: LoadConfig, plans: list[WorkerPlan]) -> None:
        """Start one process per plan; each is recorded as soon as it exists, for reap()."""
        # loadgen.worker_entry arms the parent-death signal: no worker outlives this process.
        env = child_env()
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
        )
        for plan in plans:
            parent_end, child_end = socket.socketpair()
            with parent_end, child_end:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "loadgen.worker_entry", str(child_end.fileno())],
                    stdin=subprocess.DEVNULL,
                    pass_fds=(child_end.fileno(),),
                    env=env,
                )
                self.procs.append(proc)
                conn = Connection(parent_end.detach())
            self.conns.append(conn)
            conn.send(("init", cfg, plan))

    def send_all(self, msg: tuple[Any, ...]) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(msg)

    def _handle(self, index: int, msg: tuple[Any, ...]) -> None:
        """Record a tick, raise a worker's error, stash anything else for collect()."""
        if msg[0] == "tick":
            self.ticks.append(msg[1])
        elif msg[0] == "error":
            raise WorkerFailed(f"load generator worker {msg[1]} failed:\n{msg[2]}")
        else:
            self.stash.setdefault(index, []).append(msg)

    def _receive(self, index: int, kind: str) -> None:
        try:
            msg = self.conns[index].recv()
        except (EOFError, OSError):
            code = self.procs[index].poll()
            raise WorkerFailed(
                f"load generator worker {index} exited (status {code}) without a "
                f"'{kind}' report; rerun with fewer connections or check dmesg for OOM"
            ) from None
        self._handle(index, msg)

    def collect(
        self,
        kind: str,
        payload: type[Payload],
        deadline: float,
        on_tick: Callable[[], None] | None = None,
    ) -> dict[int, Payload]:
        """Wait for one `kind` message, carrying a `payload`, from every worker (until the
        monotonic deadline).

        Raises WorkerFailed with the worker's traceback if one crashed, or if it
        sent something else under that kind (a worker from another loadgen version).
        """
        got: dict[int, Payload] = {}
        waiting = set(range(len(self.conns)))
        while True:
            for index in list(waiting):
                for msg in self.stash.pop(index, []):
                    if msg[0] != kind:
                        continue
                    if not isinstance(msg[1], payload):
                        raise WorkerFailed(
                            f"load generator worker {index} sent a {type(msg[1]).__name__} as "
                            f"its '{kind}' message, not a {payload.__name__}: the worker runs "
                            "another loadgen version; install the same one everywhere"
                        )
                    got[index] = msg[1]
                    waiting.discard(index)
            remaining = deadline - time.monotonic()
            if not waiting or remaining <= 0:
                return got
            ready = wait([self.conns[i] for i in waiting], timeout=min(remaining, 0.5))
            for conn in ready:
                before = len(self.ticks)
                self._receive(self.conns.index(conn), kind)
                if on_tick is not None and len(self.ticks) != before:
                    on_tick()

    def drain_ticks(self) -> None:
        """Read queued messages without blocking (keeps the pipes from filling)."""
        for index, conn in enumerate(self.conns):
            with contextlib.suppress(EOFError, OSError):
                while conn.poll():
                    self._handle(index, conn.recv())

    def reap(self) -> None:
        """Every worker ends: ask, wait, then SIGTERM and SIGKILL by PID; all reaped."""
        self.send_all(("stop",))
        deadline = time.monotonic() + REAP_TIMEOUT_S
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.01, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(1.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for conn in self.conns:
            conn.close()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]


def worker_cpu_times(pids: list[int]) -> dict[int, tuple[float, float]]:
    out = {}
    for index, pid in enumerate(pids):
        try:
            times = psutil.Process(pid).cpu_times()
            out[index] = (times.user, times.system)
        except psutil.Error:
            pass
    return out


def sleep_until(deadline_ns: int, workers: WorkerPool, tick: Callable[[], None] | None) -> None:
    """Sleep to an absolute monotonic time, reading worker messages on the way."""
    while True:
        remaining = (deadline_ns - time.monotonic_ns()) / 1e9
        if remaining <= 0:
            return
        ready = wait(workers.conns, timeout=min(remaining, 0.5))
        if ready:
            before = len(workers.ticks)
            workers.drain_ticks()
            if tick is not None and len(workers.ticks) != before:
                tick()


def run_load(
    cfg: LoadConfig,
    on_measure_start: Callback | None = None,
    on_measure_end: Callback | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Generate the load described by cfg; return its document (LoadResult.to_dict()).

    Raises LoadgenError subclasses (RemoteNotAllowed, LimitsTooLow,
    TargetUnreachable, WorkerFailed) before or instead of a run, and
    LoadInterrupted (a KeyboardInterrupt carrying ``.result``, marked partial)
    on Ctrl-C. Every worker process is reaped before this function returns.
    """
    address, is_loopback = resolve_target(cfg)
    # The workers read these too; a bad value is named here, before any worker starts.
    wanted_core()
    wanted_poll_ns()
    plans = plan_workers(cfg, address, is_loopback)
    precheck_target(address, cfg.port, min(cfg.connect_timeout_s, PRECHECK_TIMEOUT_S))

    wall_offset = time.time() - time.monotonic()
    phases: dict[str, float | None] = dict.fromkeys(PHASE_NAMES)

    def note(phase: str, mono_s: float | None = None) -> None:
        t = time.monotonic() if mono_s is None else mono_s
        phases[phase] = round(t + wall_offset, 6)
        if progress is not None:
            progress({"phase": phase, "time": phases[phase]})

    connected: dict[int, ConnectInfo] = {}
    reports: dict[int, WorkerReport] = {}
    cpu: dict[int, CpuUsage] = {}
    measured_duration_s = 0.0
    cpu_start: dict[int, tuple[float, float]] = {}
    interrupted = False
    partial = False
    partial_reason: str | None = None
    workers: WorkerPool | None = None
    try:
        try:
            note("connect_start")
            workers = WorkerPool()
            workers.start(cfg, plans)
            connect_budget = (
                (cfg.total_connections / cfg.connect_rate if cfg.connect_rate else 0.0)
                + cfg.connect_timeout_s
                + 60.0
            )
            connected = workers.collect("connected", ConnectInfo, time.monotonic() + connect_budget)
            if len(connected) < len(plans):
                raise WorkerFailed(
                    f"only {len(connected)} of {len(plans)} workers finished connecting within "
                    f"{connect_budget:.0f} s; lower the connection count or raise connect_rate"
                )
            note("connect_end")
            _check_established(cfg, address, list(connected.values()))

            go_ns = time.monotonic_ns() + int(START_LEAD_S * 1e9)
            warmup_ns = go_ns
            measure_start_ns = warmup_ns + int(cfg.warmup_s * 1e9)
            measure_end_ns = measure_start_ns + int(cfg.measure_s * 1e9)
            workers.send_all(("go", warmup_ns, measure_start_ns, measure_end_ns))

            def tick() -> None:
                if progress is None:
                    return
                done = sum(t.requests for t in workers.ticks)
                progress({"phase": "measure", "requests": done, "ticks": len(workers.ticks)})

            sleep_until(warmup_ns, workers, None)
            note("warmup_start", warmup_ns / 1e9)
            sleep_until(measure_start_ns, workers, None)
            if on_measure_start is not None:
                on_measure_start()
            cpu_start = worker_cpu_times(workers.pids)
            note("measure_start", measure_start_ns / 1e9)
            sleep_until(measure_end_ns, workers, tick)
            if on_measure_end is not None:
                on_measure_end()
            cpu_end = worker_cpu_times(workers.pids)
            workers.send_all(("release",))
            note("measure_end", measure_end_ns / 1e9)
            measured_duration_s = (measure_end_ns - measure_start_ns) / 1e9
            cpu = cpu_delta(cpu_start, cpu_end)
            result_deadline = time.monotonic() + cfg.request_timeout_s + 30.0
            reports = workers.collect("result", WorkerReport, result_deadline)
            note("drain_end")
            partial = len(reports) < len(plans)
            if partial:
                missing = sorted(set(range(len(plans))) - set(reports))
                partial_reason = f"workers {missing} sent no result within the deadline"
        except KeyboardInterrupt:
            interrupted = partial = True
            partial_reason = "interrupted by SIGINT"
            if workers is not None and cpu_start and not cpu:
                cpu = cpu_delta(cpu_start, worker_cpu_times(workers.pids))
            if workers is not None:
                workers.send_all(("stop",))
                with contextlib.suppress(WorkerFailed):
                    if not connected:
                        connected = workers.collect(
                            "connected", ConnectInfo, time.monotonic() + 5.0
                        )
                    reports = workers.collect("result", WorkerReport, time.monotonic() + 5.0)
            if phases["measure_start"] is not None and phases["measure_end"] is None:
                # The workers stopped measuring when they saw the stop (their end_sending).
                ends = [r.phase_ns.get("measure_end", 0) for r in reports.values()]
                stopped = max(ends, default=0) or time.monotonic_ns()
                measured_duration_s = max(0.0, (stopped - measure_start_ns) / 1e9)
    finally:
        if workers is not None:
            workers.reap()

    result = merge_results(
        cfg,
        target_address=address,
        sources=plans[0].sources,
        connected=[connected[i] for i in sorted(connected)],
        reports=[reports[i] for i in sorted(reports)],
        cpu=cpu,
        phases=Phases(**phases),
        measured_duration_s=measured_duration_s,
        partial=partial,
        interrupted=interrupted,
        partial_reason=partial_reason,
    )
    if interrupted:
        raise LoadInterrupted(result.to_dict())
    return result.to_dict()


def cpu_delta(
    start: dict[int, tuple[float, float]], end: dict[int, tuple[float, float]]
) -> dict[int, CpuUsage]:
    return {
        i: CpuUsage(user_s=end[i][0] - start[i][0], system_s=end[i][1] - start[i][1])
        for i in start
        if i in end
    }


def _check_established(cfg: LoadConfig, address: str, connected: list[ConnectInfo]) -> None:
    """No active connection at all means there is nothing to measure: say why."""
    if cfg.active_connections == 0:
        return
    established = sum(c.active_established for c in connected)
    if established:
        return
    errors: dict[str, int] = {}
    for info in connected:
        for kind, n in info.connect_errors.items():
            errors[kind] = errors.get(kind, 0) + n
    seen = ", ".join(f"{k} x{n}" for k, n in errors.items() if n) or "no error reported"
    raise TargetUnreachable(
        f"none of the {cfg.active_connections} active connections to {address}:{cfg.port} "
        f"could be established ({seen}); check the server is up and has descriptors to spare"
    )


__all__ = ["precheck_target", "run_load"]
