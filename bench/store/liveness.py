"""Who writes a run folder, and whether that process still lives.

run.json names its writer (PID, host, boot id and the process's start time in
clock ticks since boot, which tells a reused PID apart). A run recorded as
"running" whose writer is gone (the PID is free or another process's, or the
machine rebooted since) was killed without a word and is labelled
``interrupted: its process is gone``, with the last trial it wrote.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.store import schema

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
INTERRUPTED = "interrupted"
GONE = "interrupted: its process is gone"
# Statuses of a run that did not measure all it planned.
UNFINISHED = ("partial", schema.RUN_FAILED, INTERRUPTED)


def _boot_id() -> str | None:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks after boot (proc(5) field 22); None if none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def writer_identity() -> dict[str, Any]:
    """This process as run.json's ``writer``."""
    pid = os.getpid()
    return {
        "pid": pid,
        "hostname": socket.gethostname(),
        "boot_id": _boot_id(),
        "start_ticks": _start_ticks(pid),
    }


def writer_alive(writer: object) -> bool | None:
    """True/False whether the recorded writer still runs; None when this host cannot tell."""
    if not isinstance(writer, dict) or not isinstance(writer.get("pid"), int):
        return None
    if writer.get("hostname") != socket.gethostname():
        return None
    boot = _boot_id()
    if boot is not None and writer.get("boot_id") not in (None, boot):
        return False
    ticks = _start_ticks(writer["pid"])
    if ticks is None:
        return False
    recorded = writer.get("start_ticks")
    return recorded is None or ticks == recorded


@dataclass(frozen=True)
class RunState:
    """A run's status as read now: run.json's, or "interrupted" when its writer died."""

    status: str
    label: str
    # The last trial written, for a run that is not complete.
    last: str | None = None

    @property
    def unfinished(self) -> bool:
        return self.status in UNFINISHED

    def describe(self) -> str:
        """The label with the last trial written, e.g. for a report's header."""
        return f"{self.label} ({self.last})" if self.last else self.label


def last_trial(trials: pd.DataFrame | None) -> str:
    """The last trial the table holds: "N trials written; last: <raw file>, started <utc>"."""
    if trials is None or trials.empty:
        return "no trial written"
    row = trials.iloc[-1]
    name = row.get("raw_file")
    what = Path(str(name)).stem if isinstance(name, str) else f"#{row.get('order_index')}"
    started = row.get("started_utc")
    when = f", started {started}" if isinstance(started, str) else ""
    return f"{len(trials)} trials written; last: {what}{when}"


def run_state(meta: dict[str, Any], trials: pd.DataFrame | None) -> RunState:
    """The status to show for a run, with the last trial written when it is not complete."""
    status = str(meta.get("status"))
    if status == "complete":
        return RunState(status, status)
    last = last_trial(trials)
    writer = meta.get("writer")
    if status == "running":
        alive = writer_alive(writer)
        if alive is False:
            return RunState(INTERRUPTED, GONE, last)
        if alive is None and not isinstance(writer, dict):
            return RunState(status, "running, or interrupted: run.json names no writer", last)
        if alive is None:
            return RunState(status, f"running on {writer.get('hostname')} (not checked)", last)
        return RunState(status, f"running (PID {writer['pid']})", last)
    if status == schema.RUN_FAILED:
        return RunState(status, f"failed: {meta.get('failure') or 'no reason recorded'}", last)
    return RunState(status, status, last)
