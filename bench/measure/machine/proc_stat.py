"""The whole machine's CPU time from /proc/stat: busy, idle and stolen, summed over every CPU.

Read at the edges of a trial's measured window (``bench.measure.placement``)
and before a run (``bench.measure.machine.quiet``). The counters are in clock ticks
(USER_HZ, 100 per second on Linux): a 0.45 s window on 2 CPUs holds ~90 ticks,
so a window's figures resolve to about a tick per CPU at each edge.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

# Fields of the aggregate "cpu" line, in the kernel's order (proc(5)).
USER, NICE, SYSTEM, IDLE, IOWAIT, IRQ, SOFTIRQ, STEAL = range(8)


@dataclass(frozen=True)
class MachineCpu:
    """Seconds every CPU of the machine has spent, by kind, since boot."""

    # user + nice + system + irq + softirq. Guest time is already inside user and
    # nice (the kernel counts it twice), so it is not added again.
    busy_s: float
    # idle + iowait: iowait is an idle CPU with a disk request outstanding.
    idle_s: float
    # Time the hypervisor ran something else while this machine's vCPU wanted to run.
    steal_s: float
    # CPUs online at the read (the "cpuN" lines).
    cpus: int
    # Per CPU (by its number): idle + iowait + steal + irq + softirq, the time no task
    # ran there. A window's task time on a CPU is its length less this: under NOHZ the
    # kernel measures idle time exactly, while user + system are sampled at the tick,
    # and a CPU woken from another one ~1,000 times a second (a server in open loop)
    # read 0.00-0.19 s of user + system in 0.45 s windows where its one task ran
    # 0.055 s and idle read 0.39 s (2-vCPU VM, 2026-12-06): tick sampling flagged
    # 8-9 of 122 trials of quiet default runs as disturbed. IRQ and softirq are
    # counted as no task's: on loopback most of them are the trial's own packets
    # (bench.measure.machine.disturbance).
    untasked_s_by_cpu: dict[int, float] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return self.busy_s + self.idle_s + self.steal_s


def parse_proc_stat(text: str, ticks_per_s: float) -> MachineCpu | None:
    """The machine's CPU times from /proc/stat's text; None when its "cpu" line is unreadable."""
    lines = text.splitlines()
    aggregate = next((line.split() for line in lines if line.split()[:1] == ["cpu"]), None)
    if aggregate is None or len(aggregate) < STEAL + 2:
        return None
    try:
        ticks = [int(x) for x in aggregate[1 : STEAL + 2]]
    except ValueError:
        return None
    by_cpu: dict[int, float] = {}
    for line in lines:
        if not (line.startswith("cpu") and line[3:4].isdigit()):
            continue
        name, *values = line.split()
        try:
            untasked = sum(int(values[f]) for f in (IDLE, IOWAIT, IRQ, SOFTIRQ, STEAL))
            by_cpu[int(name[3:])] = untasked / ticks_per_s
        except (ValueError, IndexError):
            continue
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())

    def seconds(*fields: int) -> float:
        return sum(ticks[f] for f in fields) / ticks_per_s

    return MachineCpu(
        busy_s=seconds(USER, NICE, SYSTEM, IRQ, SOFTIRQ),
        idle_s=seconds(IDLE, IOWAIT),
        steal_s=seconds(STEAL),
        cpus=cpus,
        untasked_s_by_cpu=by_cpu,
    )


def read_machine_cpu() -> MachineCpu | None:
    """This machine's CPU times now; None where /proc/stat cannot be read."""
    try:
        with open("/proc/stat") as fh:
            text = fh.read()
    except OSError:
        return None
    return parse_proc_stat(text, os.sysconf("SC_CLK_TCK"))
