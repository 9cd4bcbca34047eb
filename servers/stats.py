"""Always-on, cheap server counters and the control channel that reads them.

The event loop bumps plain integer attributes (a `__slots__` object, no locks:
only the loop thread writes). A daemon thread blocked in `accept()` on a
loopback port hands out a JSON snapshot to whoever connects, so the harness
can read the counters at the exact edges of a measured window without
stopping or signalling the server. While blocked in accept the thread holds
no GIL and costs the loop nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time

COUNTERS = (
    "wait_calls",
    "wait_ns",
    "wait_events",
    "loop_iterations",
    "accepted",
    "closed",
    "current_connections",
    "peak_connections",
    "requests",
    "bytes_in",
    "bytes_out",
    "rejected_fd_setsize",
    "accept_emfile",
    "errors",
    "registered_fds",
    "paused_reads",
)


class ServerStats:
    """Counters of one server process. Attribute names are the JSON keys."""

    __slots__ = (*COUNTERS, "backend", "protocol", "wait_instrumented", "_lock")

    def __init__(self, backend: str, protocol: str, wait_instrumented: bool) -> None:
        for name in COUNTERS:
            setattr(self, name, 0)
        self.backend = backend
        self.protocol = protocol
        self.wait_instrumented = wait_instrumented
        # Only the thread-per-connection server needs it; event loops never take it.
        self._lock = threading.Lock()

    def connection_opened(self) -> None:
        self.accepted += 1
        self.current_connections += 1
        if self.current_connections > self.peak_connections:
            self.peak_connections = self.current_connections

    def connection_closed(self) -> None:
        self.closed += 1
        self.current_connections -= 1

    def snapshot(self) -> dict[str, object]:
        times = os.times()
        snap: dict[str, object] = {name: getattr(self, name) for name in COUNTERS}
        snap.update(
            time_ns=time.monotonic_ns(),
            backend=self.backend,
            protocol=self.protocol,
            pid=os.getpid(),
            wait_instrumented=self.wait_instrumented,
            cpu_user_s=times.user,
            cpu_system_s=times.system,
        )
        return snap


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

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # listener closed: the server is shutting down
            try:
                with client:
                    payload = json.dumps(self._stats.snapshot()).encode() + b"\n"
                    client.sendall(payload)
            except OSError:
                continue

    def close(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone may not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=1.0)
