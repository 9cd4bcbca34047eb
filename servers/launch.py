"""Start a reference server as its own subprocess and talk to it.

    with start_server(ServerConfig(backend="epoll", protocol="http", cpu=0)) as srv:
        before = srv.stats()                  # servers.stats.StatsSnapshot
        ...
        window = before.delta(srv.stats())    # servers.stats.StatsDelta
    srv.exit_status(), srv.exit_reason()      # 0, "exited with status 0 (no stderr)"

The process is ended by its PID (SIGTERM, then SIGKILL after a timeout) and
reaped when the block exits, even on error.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from lifeline import child_env
from servers import registry
from servers.config import ServerConfig
from servers.stats import StatsSnapshot

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ServerStartError(RuntimeError):
    """The server process did not announce READY; the message carries its stderr."""


class ServerGone(RuntimeError):
    """The server died or stopped answering its control channel."""


def available_backends() -> list[str]:
    """Registered backends usable here (uvloop only when it is installed), in registry order."""
    return [b.name for b in registry.all_backends() if b.unavailable_reason() is None]


def child_process_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child `python -m <this project's package>`: `env` (default
    os.environ) with the project root first on PYTHONPATH, so the child imports this
    checkout even when the project is not installed. SELECTBENCH_PLUGINS passes through,
    so the child loads the same plugins."""
    child = dict(os.environ if env is None else env)
    child["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), child.get("PYTHONPATH", "")) if p
    )
    return child


class ServerProcess:
    """A running server subprocess."""

    def __init__(self, config: ServerConfig, popen: subprocess.Popen[bytes], stderr_file: Any):
        self.config = config
        self._popen = popen
        self.pid = popen.pid
        self._stderr_file = stderr_file
        self.ready_info: dict[str, Any] = {}
        self.port = 0
        self.control_port: int | None = None
        self._exit_status: int | None = None
        self._stderr_cache = ""
        self._control_lock = threading.Lock()
        self._stdout_buf = b""
        self._selector = selectors.DefaultSelector()
        assert popen.stdout is not None
        self._selector.register(popen.stdout, selectors.EVENT_READ)

    @property
    def host(self) -> str:
        return self.config.host

    def _wait_ready(self, timeout_s: float) -> None:
        try:
            line = self._read_line(timeout_s)
        except ServerGone as exc:
            # A closed stdout usually means the process is exiting: give it a moment,
            # so the message says how it ended rather than "no READY line".
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout=1.0)
            exited = self._popen.poll() is not None
            self.stop()
            if exited:
                raise ServerStartError(
                    f"{self.config.backend} server {self.exit_reason()} before READY"
                ) from None
            raise ServerStartError(
                f"{self.config.backend} server (pid {self.pid}) printed no READY line "
                f"within {timeout_s:.0f} s ({exc}); stderr: {self.stderr_text()!r}"
            ) from None
        if not line.startswith(b"READY "):
            self.stop()
            raise ServerStartError(f"unexpected first line from server: {line!r}")
        self.ready_info = json.loads(line[len(b"READY ") :])
        self.port = int(self.ready_info["port"])
        self.control_port = self.ready_info.get("control_port")

    def stderr_text(self) -> str:
        """What the server wrote to stderr so far (kept after stop())."""
        if not self._stderr_file.closed:
            self._stderr_file.seek(0)
            self._stderr_cache = self._stderr_file.read().decode(errors="replace")
        return self._stderr_cache

    def is_alive(self) -> bool:
        return self._popen.poll() is None

    def exit_status(self) -> int | None:
        """None while running; else the exit status (negative: killed by that signal)."""
        if self._exit_status is not None:
            return self._exit_status
        return self._popen.poll()

    def exit_reason(self) -> str | None:
        """None while running; else one sentence: how it ended and its last stderr."""
        status = self.exit_status()
        if status is None:
            return None
        if status < 0:
            try:
                name = signal.Signals(-status).name
            except ValueError:
                name = f"signal {-status}"
            how = f"was killed by {name}"
        else:
            how = f"exited with status {status}"
        tail = self.stderr_text().strip()[-500:]
        return f"{how}: {tail}" if tail else f"{how} (no stderr)"

    def stats(self, timeout_s: float = 5.0) -> StatsSnapshot:
        """A snapshot of the server's counters.

        Asked over the server's stdin and answered on its stdout, a channel
        that needs no new descriptor in the server, so it works even while
        clients hold every descriptor the server may open.
        """
        if self.control_port is None:
            raise RuntimeError("this server was started without its control channel")
        if self._popen.poll() is not None:
            raise ServerGone(f"{self.config.backend} server (pid {self.pid}) {self.exit_reason()}")
        assert self._popen.stdin is not None and self._popen.stdout is not None
        with self._control_lock:
            try:
                self._popen.stdin.write(b"stats\n")
                self._popen.stdin.flush()
            except (BrokenPipeError, OSError) as exc:
                raise ServerGone(f"{self.config.backend} server stopped answering: {exc}") from exc
            line = self._read_line(timeout_s)
        return StatsSnapshot.from_json(json.loads(line))

    def _read_line(self, timeout_s: float) -> bytes:
        assert self._popen.stdout is not None
        fd = self._popen.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._stdout_buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._selector.select(remaining):
                raise ServerGone(
                    f"{self.config.backend} server (pid {self.pid}) did not answer a stats "
                    f"request within {timeout_s:.0f} s"
                )
            chunk = os.read(fd, 65536)
            if not chunk:
                raise ServerGone(f"{self.config.backend} server closed its stdout (exited?)")
            self._stdout_buf += chunk
        line, _, self._stdout_buf = self._stdout_buf.partition(b"\n")
        return line

    def stop(self, timeout_s: float = 5.0) -> int:
        """SIGTERM by PID, SIGKILL if it has not exited within `timeout_s`; reap it."""
        if self._exit_status is not None:
            return self._exit_status
        if self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self._popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self._popen.wait()
        self._exit_status = self._popen.returncode
        self._selector.close()
        for pipe in (self._popen.stdin, self._popen.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self.stderr_text()
        self._stderr_file.close()
        return self._exit_status

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_server(config: ServerConfig, timeout_s: float = 15.0) -> ServerProcess:
    """Start `python -m servers` with `config` and wait for its READY line."""
    stderr_file = tempfile.TemporaryFile()  # noqa: SIM115 -- owned by ServerProcess, closed in stop()
    popen = subprocess.Popen(
        # The config whole, as JSON: the child reads it without importing tyro.
        [sys.executable, "-m", "servers", "--config-json", config.to_json()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr_file,
        # servers.cli arms the parent-death signal: no orphan server, however bench ends.
        env=child_env(child_process_env()),
        close_fds=True,
    )
    server = ServerProcess(config, popen, stderr_file)
    try:
        server._wait_ready(timeout_s)
    except BaseException:
        server.stop()
        raise
    return server
