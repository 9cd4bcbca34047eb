"""Disturbance within a trial: CPU time other processes took on the trial's CPUs.

The quiet check before a run sees the machine once; a backup, a build or a
second benchmark that starts later takes CPU from the server or the load
generator inside a trial's window, and the numbers shrink without a word (two
runs at once read closed-loop epoll at 44.4k-87.6k requests/s against 95.4k
alone). So each window is checked: on the server's CPU and on the load
generator's CPUs, the time tasks ran there (the window less /proc/stat's
per-CPU idle, iowait, steal, irq and softirq, read at the window's two edges)
less the time of the trial's own processes pinned there (the server's, from its
schedstat; the load workers', from the load generator's window readings; bench's
own, which runs on the load CPUs while it measures) is time some other process ran. Its share
of the window on those CPUs is the column; beyond ``DISTURBED_SHARE_MAX`` the
trial is flagged ``disturbed`` and left out of the verdict.

The identity holds where it can be checked: a busy loop pinned to one CPU of a
2-vCPU VM under SCHED_FIFO for 2 s (the kernel's RT throttling leaves other tasks
5% of each second) read 2.010 s charged there and 1.894 s of its own schedstat,
a share of 0.058 (2026-12-06); the same loop at normal priority on that busy
machine read 0.303.

IRQ and softirq time is left out of both sides: on loopback most of it is the
trial's own packets, and the kernel charges it to no task. Across hosts
(DaskPlacement) neither share is measured yet: the load CPUs are on other
machines, and the server's is pinned by its agent, not by bench's numbering.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bench import metrics
from bench.measure.machine.proc_stat import MachineCpu
from bench.measure.placement import Edge
from loadgen import LoadResult

# A trial whose server CPU or load CPUs gave more than this share of the window to
# other processes is flagged. /proc/stat counts in 10 ms ticks, so each CPU's figure
# may be off by a tick at either edge: two ticks of a 0.3 s window (the tiny preset's)
# are 6.7%, and a bound below that would flag quiet trials. 10% of a CPU-bound server's
# CPU lost to another process costs it about 10% of its throughput, more than the
# differences between mechanisms at a few hundred descriptors (claim 2's cells), so
# such a window cannot tell them apart.
DISTURBED_SHARE_MAX = 0.10
DISTURBED = "disturbed"


def foreign_share(
    start: MachineCpu | None,
    end: MachineCpu | None,
    cpus: Iterable[int],
    own_s: float | None,
    window_s: float,
) -> float | None:
    """Time charged on ``cpus`` to tasks other than the trial's own (``own_s``), as a
    share of the window on those CPUs; None when a reading is missing."""
    wanted = sorted(set(cpus))
    if start is None or end is None or own_s is None or not wanted or window_s <= 0:
        return None
    a, b = start.untasked_s_by_cpu, end.untasked_s_by_cpu
    if any(c not in a or c not in b for c in wanted):
        return None  # a CPU went offline, or the reads predate per-CPU figures
    # What tasks ran on those CPUs: the window less the time no task ran there
    # (proc_stat.MachineCpu.untasked_s_by_cpu: idle is exact under NOHZ, user and
    # system are tick samples).
    charged = sum(max(0.0, window_s - (b[c] - a[c])) for c in wanted)
    # Own time read more finely than /proc/stat's ticks may exceed the charged time by a
    # tick or two: no process can have run less than nothing.
    return round(max(0.0, charged - own_s) / (window_s * len(wanted)), 6)


def _server_own_s(start: Edge, end: Edge) -> float | None:
    if start.process is None or end.process is None:
        return None
    x, y = start.process.cpu_ns_schedstat, end.process.cpu_ns_schedstat
    if x is not None and y is not None:
        return (y - x) / 1e9
    return (end.process.cpu_user_s + end.process.cpu_system_s) - (
        start.process.cpu_user_s + start.process.cpu_system_s
    )


def _load_own_s(start: Edge, end: Edge, result: LoadResult) -> float | None:
    if start.reader_cpu_s is None or end.reader_cpu_s is None:
        return None
    workers = sum(w.cpu_user_s + w.cpu_system_s for w in result.workers)
    return workers + (end.reader_cpu_s - start.reader_cpu_s)


def foreign_cpu_columns(
    start: Edge,
    end: Edge,
    result: LoadResult,
    server_cpu: int | None,
    load_cpus: Iterable[int],
    across_hosts: bool,
) -> dict[str, Any]:
    """The two foreign-CPU shares of one window (None where not measured)."""
    window_s = end.monotonic_s - start.monotonic_s
    server_cpus = [] if server_cpu is None else [server_cpu]
    load = [] if across_hosts else sorted(set(load_cpus))
    server_own = _server_own_s(start, end)
    load_own = None if across_hosts else _load_own_s(start, end, result)
    if set(server_cpus) & set(load):
        # One CPU shared by server and load (a 1-CPU machine): one figure for both.
        both = None if server_own is None or load_own is None else server_own + load_own
        share = foreign_share(start.machine, end.machine, [*server_cpus, *load], both, window_s)
        server_share = load_share = share
    else:
        server_share = foreign_share(start.machine, end.machine, server_cpus, server_own, window_s)
        load_share = foreign_share(start.machine, end.machine, load, load_own, window_s)
    return {
        metrics.FOREIGN_CPU_SHARE_SERVER.name: server_share,
        metrics.FOREIGN_CPU_SHARE_LOAD.name: load_share,
    }


def disturbed_reason(row: dict[str, Any]) -> str | None:
    """``disturbed(server 0.23, load 0.02)`` when either share is over the bound, else None."""
    shares = {
        "server": row.get(metrics.FOREIGN_CPU_SHARE_SERVER.name),
        "load": row.get(metrics.FOREIGN_CPU_SHARE_LOAD.name),
    }
    if not any(v is not None and v > DISTURBED_SHARE_MAX for v in shares.values()):
        return None
    said = ", ".join(f"{k} {v:.2f}" for k, v in shares.items() if v is not None)
    return f"{DISTURBED}({said})"
