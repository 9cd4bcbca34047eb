"""loadgen.wake_slice: an open-loop worker asks the scheduler for a short slice."""

from __future__ import annotations

import os
import platform
import threading
from pathlib import Path

import pytest

from loadgen import wake_slice


def _in_thread(fn):  # type: ignore[no-untyped-def]
    """Run fn in a fresh thread (sched_setattr and nice are per thread); return its value."""
    out: dict[str, object] = {}

    def run() -> None:
        out["value"] = fn()

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out["value"]


def _thread_slice_ns() -> int | None:
    path = Path(f"/proc/self/task/{threading.get_native_id()}/sched")
    for line in path.read_text().splitlines() if path.exists() else []:
        if line.startswith("se.slice"):
            return int(line.split(":")[1])
    return None


def _kernel_has_custom_slices() -> bool:
    major, minor = (int(x) for x in platform.release().split(".")[:2])
    return (major, minor) >= (6, 12)


@pytest.mark.skipif(
    platform.machine() not in wake_slice.SYS_SCHED_SETATTR or not _kernel_has_custom_slices(),
    reason="custom SCHED_OTHER slices need Linux 6.12+ on a known architecture",
)
def test_the_thread_gets_the_short_slice_and_keeps_its_nice_value() -> None:
    def ask() -> tuple[int | None, bool, int | None, int]:
        os.setpriority(os.PRIO_PROCESS, 0, 3)  # this thread only
        before = _thread_slice_ns()
        took = wake_slice.request_short_slice()
        return before, took, _thread_slice_ns(), os.getpriority(os.PRIO_PROCESS, 0)

    before, took, after, nice = _in_thread(ask)
    if before is None:
        pytest.skip("this kernel's /proc/PID/sched has no se.slice")
    assert took
    assert after == wake_slice.SHORT_SLICE_NS != before
    assert nice == 3
    assert os.sched_getscheduler(0) == wake_slice.SCHED_OTHER


def test_an_unknown_architecture_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wake_slice.platform, "machine", lambda: "pdp11")
    before = _in_thread(_thread_slice_ns)
    assert _in_thread(wake_slice.request_short_slice) is False
    assert _in_thread(_thread_slice_ns) == before


def test_current_slice_reads_this_process() -> None:
    got = wake_slice.current_slice_ns()
    if got is None:
        pytest.skip("this kernel's /proc/self/sched has no se.slice")
    assert got > 0
