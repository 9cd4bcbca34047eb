"""Where the processes of a trial run: the one seam for starting, reading and stopping them.

Everything bench does to a server or load-generator process goes through a
``Placement``: start a server (pinned), read it at an edge of the measured
window (its own counters plus the kernel's CPU accounting), run the load
generator, stop everything it started. ``LocalPlacement`` runs them all on this
host; other hosts plug in behind the same interface.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import psutil

from bench.measure.machine.proc_stat import MachineCpu, read_machine_cpu
from bench.tables import utc_now_iso
from loadgen import LoadConfig
from servers.config import ServerConfig
from servers.stats import StatsSnapshot


@dataclass(frozen=True)
class ProcessCpu:
    """The kernel's view of a server process at one instant."""

    cpu_user_s: float
    cpu_system_s: float
    rss_bytes: int
    num_fds: int
    # Nanoseconds on a CPU from /proc/<pid>/task/*/schedstat: psutil's cpu_times
    # come in 10 ms ticks, too coarse for a sub-second window.
    cpu_ns_schedstat: int | None
    # Nanoseconds runnable but waiting for a CPU (schedstat's second field), all threads.
    run_delay_ns_schedstat: int | None = None


@dataclass(frozen=True)
class Edge:
    """A server read at one edge of the measured window. Never raises to build."""

    utc: str
    monotonic_s: float
    stats: StatsSnapshot | None
    stats_error: str | None
    process: ProcessCpu | None
    process_error: str | None
    # The whole machine's CPU times (/proc/stat) read beside the process; None
    # where unreadable or not asked for.
    machine: MachineCpu | None = None
    # CPU time (user + system, every thread) of the process that read this edge
    # (bench, or the agent on the server's host): its own work is not a disturbance.
    reader_cpu_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["stats"] = self.stats.as_dict() if self.stats is not None else None
        return doc


class ServerHandle(Protocol):
    """A running server, wherever it runs."""

    pid: int
    port: int
    host: str
    ready_info: dict[str, Any]

    def edge(self, *, with_process: bool = True) -> Edge: ...

    def exit_reason(self) -> str | None: ...

    def stderr_tail(self, limit: int = 2000) -> str | None: ...


class Placement(Protocol):
    """Starts, reads and stops the processes of a trial."""

    def server(self, config: ServerConfig) -> contextlib.AbstractContextManager[ServerHandle]: ...

    def run_load(
        self,
        config: LoadConfig,
        on_measure_start: Callable[[], None],
        on_measure_end: Callable[[], None],
    ) -> dict[str, Any]: ...

    def end_all(self) -> list[int]: ...


def schedstat_ns(pid: int) -> tuple[int, int] | None:
    """(on a CPU, runnable but waiting for one) nanoseconds, summed over the process's threads."""
    run = wait = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as fh:
                fields = fh.read().split()
            run += int(fields[0])
            wait += int(fields[1])
    except (OSError, ValueError, IndexError):
        return None
    return run, wait


def schedstat_cpu_ns(pid: int) -> int | None:
    """Nanoseconds the process's threads have run on a CPU (user + system)."""
    ns = schedstat_ns(pid)
    return None if ns is None else ns[0]


def open_fd_count(ps: psutil.Process) -> int:
    """The process's open descriptors, without listing them where the kernel can count.

    bench reads the server at the window's start on the load generator's CPU, so
    its cost there is time the load generator's sender may wait. psutil's
    num_fds lists /proc/PID/fd, whose cost grows with the server's descriptors:
    in four default runs of 2026-12-06 the start edge ended 1.9 ms after the
    window began at 0 idle connections, 4.3 ms at 1,000 and 11.2 ms at 4,000,
    and no send of those 252 open-loop trials was later than that. Since Linux
    6.2 stat() of that directory gives the count as its size; with it the edge
    ended 1.5-1.6 ms after the start at every idle count (idle-scaling, four
    backends, two repetitions, twice).
    """
    try:
        count = os.stat(f"/proc/{ps.pid}/fd").st_size
    except OSError:
        count = 0
    return count if count > 0 else ps.num_fds()


def _read_cpu(ps: psutil.Process) -> ProcessCpu:
    with ps.oneshot():
        cpu = ps.cpu_times()
        ns = schedstat_ns(ps.pid)
        return ProcessCpu(
            cpu_user_s=cpu.user,
            cpu_system_s=cpu.system,
            rss_bytes=ps.memory_info().rss,
            num_fds=open_fd_count(ps),
            cpu_ns_schedstat=None if ns is None else ns[0],
            run_delay_ns_schedstat=None if ns is None else ns[1],
        )


def _sum_cpu(parts: list[ProcessCpu]) -> ProcessCpu:
    """One server made of several processes, read as one."""

    def total(values: list[int | None]) -> int | None:
        return None if None in values else sum(v for v in values if v is not None)

    return ProcessCpu(
        cpu_user_s=sum(p.cpu_user_s for p in parts),
        cpu_system_s=sum(p.cpu_system_s for p in parts),
        rss_bytes=sum(p.rss_bytes for p in parts),
        num_fds=sum(p.num_fds for p in parts),
        cpu_ns_schedstat=total([p.cpu_ns_schedstat for p in parts]),
        run_delay_ns_schedstat=total([p.run_delay_ns_schedstat for p in parts]),
    )


class LocalServer:
    """A server subprocess on this host (``servers.launch``) seen through ServerHandle."""

    def __init__(self, process: Any) -> None:
        self._process = process
        self.pid: int = process.pid
        self.port: int = process.port
        self.host: str = process.host
        self.ready_info: dict[str, Any] = dict(process.ready_info)
        # The server process and the ones it runs the work in (READY's worker_pids:
        # haproxy under its wrapper); their CPU time is summed at every edge.
        pids: list[int] = [process.pid, *self.ready_info.get("worker_pids", [])]
        try:
            self._processes: list[psutil.Process] | None = [psutil.Process(pid) for pid in pids]
        except psutil.Error:
            self._processes = None

    def edge(self, *, with_process: bool = True) -> Edge:
        stats = stats_error = None
        try:
            stats = self._process.stats()
        except Exception as exc:  # the control channel of a dead server refuses
            stats_error = f"{type(exc).__name__}: {exc}"
        process = process_error = machine = reader_cpu_s = None
        if with_process and self._processes is not None:
            try:
                process = _sum_cpu([_read_cpu(ps) for ps in self._processes])
            except psutil.Error as exc:
                process_error = f"{type(exc).__name__}: {exc}"
        if with_process:
            machine = read_machine_cpu()
            reader_cpu_s = time.process_time()
        return Edge(
            utc_now_iso(),
            time.monotonic(),
            stats,
            stats_error,
            process,
            process_error,
            machine,
            reader_cpu_s,
        )

    def exit_reason(self) -> str | None:
        reason = self._process.exit_reason()
        return None if reason is None else f"server process exited during the trial ({reason})"

    def stderr_tail(self, limit: int = 2000) -> str | None:
        return self._process.stderr_text()[-limit:]


class LocalPlacement:
    """Every process on this host: the server pinned by its config, the load generator's
    workers pinned to the CPUs in its config."""

    @contextlib.contextmanager
    def server(self, config: ServerConfig) -> Iterator[ServerHandle]:
        from servers.launch import start_server

        with start_server(config) as process:
            yield LocalServer(process)

    def run_load(
        self,
        config: LoadConfig,
        on_measure_start: Callable[[], None],
        on_measure_end: Callable[[], None],
    ) -> dict[str, Any]:
        from loadgen import run_load

        # bench reads the server at the window's edges from the load generator's
        # CPUs, never from the server's (its own work there would be measured as
        # the server's contention). The server pinned itself at start-up.
        previous = os.sched_getaffinity(0)
        if config.cpus:
            os.sched_setaffinity(0, set(config.cpus))
        try:
            return run_load(
                config, on_measure_start=on_measure_start, on_measure_end=on_measure_end
            )
        finally:
            os.sched_setaffinity(0, previous)

    def end_all(self, timeout_s: float = 3.0) -> list[int]:
        """Terminate every child of this process by PID; returns those that needed it.

        Servers and load generators stop their own processes on the way out; this
        is the last line of defence after Ctrl-C, so nothing outlives bench.
        """
        try:
            children = psutil.Process(os.getpid()).children(recursive=True)
        except psutil.Error:
            return []
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.terminate()
        _, alive = psutil.wait_procs(children, timeout=timeout_s)
        for child in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(alive, timeout=timeout_s)
        return [c.pid for c in children]
