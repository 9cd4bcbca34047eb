"""Start a reference server as its own subprocess and talk to it.

    with start_server(ServerConfig(backend="epoll", protocol="http", cpu=0)) as srv:
        srv.port, srv.pid, srv.stats()

The process is ended by its PID (SIGTERM, then SIGKILL after a timeout) and
reaped when the block exits, even on error.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from servers.config import BACKENDS, ServerConfig

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ServerStartError(RuntimeError):
    """The server process did not announce READY; the message carries its stderr."""


def available_backends() -> list[str]:
    """Backends usable here: uvloop only when it is installed."""
    try:
        import uvloop  # noqa: F401

        return list(BACKENDS)
    except ImportError:
        return [b for b in BACKENDS if b != "uvloop"]


class ServerProcess:
    """A running server subprocess."""

    def __init__(self, config: ServerConfig, popen: subprocess.Popen[bytes], stderr_file: Any):
        self.config = config
        self.popen = popen
        self.pid = popen.pid
        self._stderr_file = stderr_file
        self.ready_info: dict[str, Any] = {}
        self.port = 0
        self.control_port: int | None = None
        self.exit_code: int | None = None

    @property
    def host(self) -> str:
        return self.config.host

    def _wait_ready(self, timeout_s: float) -> None:
        assert self.popen.stdout is not None
        deadline = time.monotonic() + timeout_s
        line = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.popen.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not sel.select(remaining):
                    self.stop()
                    raise ServerStartError(
                        f"{self.config.backend} server (pid {self.pid}) printed no READY line "
                        f"within {timeout_s:.0f} s; stderr: {self.stderr_text()!r}"
                    )
                chunk = os.read(self.popen.stdout.fileno(), 4096)
                if not chunk:
                    code = self.popen.wait()
                    raise ServerStartError(
                        f"{self.config.backend} server exited with status {code} before READY: "
                        f"{self.stderr_text().strip() or '(no stderr)'}"
                    )
                line += chunk
        if not line.startswith(b"READY "):
            self.stop()
            raise ServerStartError(f"unexpected first line from server: {line!r}")
        self.ready_info = json.loads(line[len(b"READY ") :])
        self.port = int(self.ready_info["port"])
        self.control_port = self.ready_info.get("control_port")

    def stderr_text(self) -> str:
        self._stderr_file.seek(0)
        return self._stderr_file.read().decode(errors="replace")

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    def stats(self, timeout_s: float = 5.0) -> dict[str, Any]:
        """A snapshot of the server's counters, read over its control channel."""
        if self.control_port is None:
            raise RuntimeError("this server was started without its control channel")
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=timeout_s) as s:
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return json.loads(b"".join(chunks))

    def stop(self, timeout_s: float = 5.0) -> int:
        """SIGTERM by PID, SIGKILL if it has not exited within `timeout_s`; reap it."""
        if self.exit_code is not None:
            return self.exit_code
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait()
        self.exit_code = self.popen.returncode
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self._stderr_file.close()
        return self.exit_code

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
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
    )
    stderr_file = tempfile.TemporaryFile()  # noqa: SIM115 -- owned by ServerProcess, closed in stop()
    popen = subprocess.Popen(
        [sys.executable, "-m", "servers", *config.to_argv()],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr_file,
        env=env,
        close_fds=True,
    )
    server = ServerProcess(config, popen, stderr_file)
    try:
        server._wait_ready(timeout_s)
    except BaseException:
        server.stop()
        raise
    return server
