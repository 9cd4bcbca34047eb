"""The server's control channels: how the harness reads `ServerStats` while the loop runs.

A daemon thread blocked in `accept()` on a loopback port hands out a JSON
snapshot to whoever connects, so the harness can read the counters at the exact
edges of a measured window without stopping or signalling the server. While
blocked in accept the thread holds no GIL and costs the loop nothing. The
launcher uses a second channel that needs no new descriptor: a line on the
server's stdin, answered on stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time

from servers.limits import OUT_OF_FDS_ERRNOS
from servers.stats import ServerStats


class StdioControl:
    """The harness's own channel: each line on stdin is answered by one JSON line on stdout.

    It needs no descriptor beyond the pipes the server was started with, so it
    keeps working when clients hold every descriptor the process may open
    (EMFILE), where a loopback control port cannot accept. Only this thread
    writes to stdout after the READY line.
    """

    def __init__(self, stats: ServerStats) -> None:
        self._stats = stats
        self._thread = threading.Thread(target=self._serve, name="stdio-control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        # Raw descriptor reads and writes: a daemon thread blocked inside a
        # buffered sys.stdin would abort the interpreter at exit.
        stdin_fd, stdout_fd = sys.stdin.fileno(), sys.stdout.fileno()
        pending = b""
        try:
            while chunk := os.read(stdin_fd, 4096):
                pending += chunk
                while b"\n" in pending:
                    _, _, pending = pending.partition(b"\n")
                    payload = json.dumps(self._stats.snapshot()).encode() + b"\n"
                    while payload:
                        payload = payload[os.write(stdout_fd, payload) :]
        except (OSError, ValueError):
            return  # the harness closed its end


class ControlChannel:
    """Loopback listener: every connection receives one JSON line of stats, then EOF."""

    def __init__(self, stats: ServerStats, host: str = "127.0.0.1") -> None:
        self._stats = stats
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._closed = False
        # A spare descriptor, released when accept() fails with EMFILE.
        self._reserve_fd: int | None = os.open(os.devnull, os.O_RDONLY)

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError as exc:
                if self._closed:
                    return  # listener closed: the server is shutting down
                if exc.errno in OUT_OF_FDS_ERRNOS and self._reserve_fd is not None:
                    # The server is out of descriptors (its clients hold them all):
                    # give up our spare one so the harness can still read stats.
                    os.close(self._reserve_fd)
                    self._reserve_fd = None
                else:
                    time.sleep(0.01)  # an aborted connection, or no spare left
                continue
            try:
                with client:
                    payload = json.dumps(self._stats.snapshot()).encode() + b"\n"
                    client.sendall(payload)
            except OSError:
                pass
            if self._reserve_fd is None:
                with contextlib.suppress(OSError):
                    self._reserve_fd = os.open(os.devnull, os.O_RDONLY)

    def close(self) -> None:
        self._closed = True
        # shutdown() wakes the thread blocked in accept(); close() alone may not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=1.0)
        if self._reserve_fd is not None:
            os.close(self._reserve_fd)
            self._reserve_fd = None
