"""A dead man's switch for the processes an agent starts on its host.

An agent (``bench.measure.placement.agents``) lives inside a Dask worker process. It
ends what it started when a run ends, fails or is interrupted; but if the
worker itself dies (SIGKILL, OOM, a crash), nothing in it runs any more, and
the server it started would live on: the reference servers do not exit when
their parent does. So each agent starts one leash process
(``python -m bench.measure.placement.leash``) and tells it, on its stdin, every PID it
starts (``add PID``) and ends (``drop PID``). When that pipe closes, whether
the agent closed it or its process died, the leash ends every PID still
registered (SIGTERM, then SIGKILL) and exits. The pipe's write end exists only
in the agent's process (every other child is started with ``close_fds``), so
its end of file means the agent is gone.

A PID is matched with its start time, so a number the kernel reused for an
unrelated process is never signalled.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from typing import IO

import psutil

# How long the registered processes get to exit on SIGTERM before SIGKILL.
TERM_GRACE_S = 3.0
# How often the leash looks whether they have.
POLL_S = 0.02


class Leash:
    """The agent's side: start the leash process, register and release PIDs, close."""

    def __init__(self) -> None:
        from servers.launch import child_process_env

        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.measure.placement.leash"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            env=child_process_env(),
            close_fds=True,
        )
        self.pid = self._proc.pid

    def _send(self, line: str) -> None:
        stdin: IO[bytes] | None = self._proc.stdin
        with self._lock, contextlib.suppress(OSError, ValueError):
            if stdin is not None:
                stdin.write(line.encode() + b"\n")
                stdin.flush()

    def add(self, *pids: int) -> None:
        for pid in pids:
            self._send(f"add {pid}")

    def drop(self, *pids: int) -> None:
        for pid in pids:
            self._send(f"drop {pid}")

    def close(self, timeout_s: float = TERM_GRACE_S + 2.0) -> None:
        """Close the pipe (the leash ends whatever is still registered) and reap it."""
        with self._lock, contextlib.suppress(OSError, ValueError):
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def release_pipe(self) -> None:
        """Close the pipe without waiting (a finalizer: the leash does the rest alone)."""
        with contextlib.suppress(OSError, ValueError):
            if self._proc.stdin is not None:
                self._proc.stdin.close()


def end_processes(registered: dict[int, float]) -> list[int]:
    """SIGTERM every registered process that is still the one registered, then SIGKILL."""
    alive = []
    for pid, created in registered.items():
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - created) > 0.01:
                continue  # the PID now names another process
            proc.terminate()
            alive.append(proc)
        except psutil.Error:
            continue
    still = _wait_ended(alive, TERM_GRACE_S)
    for proc in still:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    _wait_ended(still, TERM_GRACE_S)
    return [p.pid for p in alive]


def _running(proc: psutil.Process) -> bool:
    """Not ended yet. A zombie has ended: it waits for its parent (not the leash) to reap it,
    which psutil.wait_procs would wait out to the end of its timeout."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_ended(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Those of ``procs`` still running after up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    left = [p for p in procs if _running(p)]
    while left and time.monotonic() < deadline:
        time.sleep(POLL_S)
        left = [p for p in left if _running(p)]
    return left


def main() -> int:
    # Ctrl-C reaches the whole process group of a terminal; the agent decides, not us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Asked to stop (the host's shutdown): do the same as when the pipe closes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    registered: dict[int, float] = {}
    try:
        for raw in sys.stdin.buffer:
            parts = raw.decode(errors="replace").split()
            if len(parts) != 2 or not parts[1].isdigit():
                continue
            verb, pid = parts[0], int(parts[1])
            if verb == "add":
                with contextlib.suppress(psutil.Error):
                    registered[pid] = psutil.Process(pid).create_time()
            elif verb == "drop":
                registered.pop(pid, None)
    finally:
        end_processes(registered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
