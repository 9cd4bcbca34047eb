"""Who writes a run folder, and whether that process still lives.

run.json names its writer (PID, host, boot id and the process's start time in
clock ticks since boot, which tells a reused PID apart). A run recorded as
"running" whose writer is gone (the PID is free or another process's, or the
machine rebooted since) was killed without a word and is labelled
``interrupted: its process is gone``, with the last trial it wrote.
"""

from __future__ import annotations

import json
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


def _raw_rows(meta: dict[str, Any], path: Path | None) -> tuple[int, dict[str, Any] | None]:
    """How many trial documents run.json's manifest lists, and the last one's table row.

    The tables are rewritten every few trials (``bench.store.writer.TABLE_EVERY``); the
    manifest names every raw trial document as it is written.
    """
    raw = (meta.get("manifest") or {}).get("raw") if isinstance(meta, dict) else None
    if path is None or not isinstance(raw, dict):
        return 0, None
    names = sorted(n for n, e in raw.items() if isinstance(e, dict) and e.get("trial"))
    if not names:
        return 0, None
    try:
        doc = json.loads((path / schema.RAW_DIR / names[-1]).read_text())
    except (OSError, ValueError):
        return len(names), None
    row = doc.get(schema.RAW_ROW_KEY) if isinstance(doc, dict) else None
    if not isinstance(row, dict):
        return len(names), None
    return len(names), {**row, "raw_file": f"{schema.RAW_DIR}/{names[-1]}"}


def last_trial(trials: pd.DataFrame | None, meta: Any = None, path: Path | None = None) -> str:
    """The last trial written: "N trials written; last: <raw file>, started <utc>", from
    the table or, when the manifest lists more trials than it holds, from raw/."""
    count, raw_row = _raw_rows(meta, path)
    held = 0 if trials is None else len(trials)
    if count > held and raw_row is not None:
        trials = pd.DataFrame([raw_row])
        held = count
    if trials is None or trials.empty:
        return "no trial written"
    row = trials.iloc[-1]
    name = row.get("raw_file")
    what = Path(str(name)).stem if isinstance(name, str) else f"#{row.get('order_index')}"
    started = row.get("started_utc")
    when = f", started {started}" if isinstance(started, str) else ""
    return f"{max(held, len(trials))} trials written; last: {what}{when}"


def run_state(
    meta: dict[str, Any], trials: pd.DataFrame | None, path: Path | None = None
) -> RunState:
    """The status to show for a run, with the last trial written when it is not complete."""
    status = str(meta.get("status"))
    if status == "complete":
        return RunState(status, status)
    last = last_trial(trials, meta, path)
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
