"""Always-on, cheap server counters, and the typed snapshot the harness reads them as.

The event loop bumps plain integer attributes of `ServerStats` (a `__slots__`
object, no locks: only the loop thread writes). `ServerStats.snapshot()` is the
JSON document the control channels (`servers.control`) hand out;
`StatsSnapshot.from_json` is its typed reader and `StatsSnapshot.delta` the
difference over a measured window. Producer and reader live here together, so
a key cannot be renamed on one side only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Monotonic counters: a window's figure is later - earlier.
COUNTERS = (
    "wait_calls",
    "wait_ns",
    "wait_cpu_ns",
    "wait_cpu_samples",
    "wait_cpu_sample_events",
    "wait_events",
    "accepted",
    "closed",
    "requests",
    "bytes_in",
    "bytes_out",
    "rejected_fd_setsize",
    "accept_emfile",
    "errors",
    "paused_reads",
)
# Levels at one instant: a window reports the later one (and the earlier current_connections).
GAUGES = ("current_connections", "peak_connections", "registered_fds")
# Facts fixed at start-up, repeated in every snapshot and in the READY line.
START_FACTS = (
    "fd_number_limit",
    "select_probe_error",
    "select_probe_status",
    "wait_cpu_sample_seed",
    "wait_cpu_clock_overhead_ns",
)


class ServerStats:
    """Counters of one server process. Attribute names are the JSON keys."""

    __slots__ = (*COUNTERS, *GAUGES, *START_FACTS, "backend", "protocol", "wait_instrumented",
                 "_lock")  # fmt: skip

    def __init__(
        self,
        backend: str,
        protocol: str,
        wait_instrumented: bool,
        fd_number_limit: int | None = None,
    ) -> None:
        for name in (*COUNTERS, *GAUGES):
            setattr(self, name, 0)
        self.backend = backend
        self.protocol = protocol
        self.wait_instrumented = wait_instrumented
        # The descriptor number from which connections are refused (select), or None.
        self.fd_number_limit = fd_number_limit
        # Set at start-up by the select backend's probe (servers.backends.select_backend).
        self.select_probe_error: str | None = None
        self.select_probe_status: str | None = None
        # Set at start-up by servers.sampling.start_sampling when wait calls are timed.
        self.wait_cpu_sample_seed: int | None = None
        self.wait_cpu_clock_overhead_ns: int | None = None
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

    def start_facts(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in START_FACTS}

    def snapshot(self) -> dict[str, object]:
        """The JSON document of the control channels; `StatsSnapshot.from_json` reads it."""
        times = os.times()
        snap: dict[str, object] = {name: getattr(self, name) for name in (*COUNTERS, *GAUGES)}
        # One loop iteration per wait call: derived here rather than counted twice
        # on the event loop's hot path.
        snap["loop_iterations"] = self.wait_calls
        snap.update(
            time_ns=time.monotonic_ns(),
            backend=self.backend,
            protocol=self.protocol,
            pid=os.getpid(),
            wait_instrumented=self.wait_instrumented,
            cpu_user_s=times.user,
            cpu_system_s=times.system,
        )
        snap.update(self.start_facts())
        return snap


def ready_line(stats: ServerStats, **fields: Any) -> str:
    """`READY {json}\\n`: fields (port, host, ...), then pid, backend, protocol, start facts."""
    info = {
        **fields,
        "pid": os.getpid(),
        "backend": stats.backend,
        "protocol": stats.protocol,
        "wait_instrumented": stats.wait_instrumented,
        **stats.start_facts(),
    }
    return "READY " + json.dumps(info) + "\n"


class StatsFormatError(ValueError):
    """A stats document lacks a key, has an unknown one, or a value of the wrong type."""


@dataclass(frozen=True)
class StatsSnapshot:
    """One reading of a server's counters (`ServerProcess.stats()`); one field per JSON key."""

    time_ns: int  # time.monotonic_ns() in the server
    wait_calls: int
    wait_ns: int  # wall time inside the wait call (mostly sleep when load is light)
    wait_cpu_ns: int  # thread CPU time inside the sampled wait calls
    wait_cpu_samples: int  # wait calls whose CPU time was sampled
    wait_cpu_sample_events: int  # events those sampled calls returned
    wait_events: int
    loop_iterations: int
    accepted: int
    closed: int
    requests: int  # HTTP responses sent / echo reads served
    bytes_in: int
    bytes_out: int
    rejected_fd_setsize: int  # accepted, then closed: descriptor number >= fd_number_limit
    accept_emfile: int
    errors: int
    paused_reads: int
    current_connections: int
    peak_connections: int
    registered_fds: int
    cpu_user_s: float  # os.times() of the whole server process
    cpu_system_s: float
    backend: str
    protocol: str
    pid: int
    wait_instrumented: bool  # False: the wait_* counters stay 0
    fd_number_limit: int | None  # connections on descriptors numbered >= this are refused
    select_probe_error: str | None  # select's own refusal at start-up, e.g. "ValueError: ..."
    select_probe_status: str | None  # what the probe did (or why it could not run)
    wait_cpu_sample_seed: int | None  # seed of the random 1-in-8 choice of sampled calls
    wait_cpu_clock_overhead_ns: int | None  # CPU cost of one sampled call's clock reads

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> StatsSnapshot:
        """Check every key and type of a `ServerStats.snapshot()` document."""
        hints = _hints(cls)
        missing = sorted(set(hints) - set(doc))
        unknown = sorted(set(doc) - set(hints))
        if missing or unknown:
            raise StatsFormatError(
                f"server stats document: missing keys {missing}, unknown keys {unknown}: "
                "the server and this reader come from different versions of servers/"
            )
        values: dict[str, Any] = {}
        for name, hint in hints.items():
            value = doc[name]
            if hint is float and type(value) is int:
                value = float(value)
            if not _is_instance(value, hint):
                raise StatsFormatError(f"server stats: {name}={value!r} is not {hint}")
            values[name] = value
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def delta(self, later: StatsSnapshot) -> StatsDelta:
        """The window from this snapshot to `later` (of the same server process)."""
        if later.pid != self.pid:
            raise ValueError(f"snapshots of different processes ({self.pid}, {later.pid})")
        if later.time_ns < self.time_ns:
            raise ValueError("`later` was taken before this snapshot: call earlier.delta(later)")
        counters = {name: getattr(later, name) - getattr(self, name) for name in COUNTERS}
        gauges = {name: getattr(later, name) for name in GAUGES}
        facts = {name: getattr(later, name) for name in START_FACTS}
        return StatsDelta(
            window_ns=later.time_ns - self.time_ns,
            **counters,
            loop_iterations=later.loop_iterations - self.loop_iterations,
            cpu_user_s=later.cpu_user_s - self.cpu_user_s,
            cpu_system_s=later.cpu_system_s - self.cpu_system_s,
            **gauges,
            start_current_connections=self.current_connections,
            backend=later.backend,
            protocol=later.protocol,
            pid=later.pid,
            wait_instrumented=later.wait_instrumented,
            **facts,
        )


@dataclass(frozen=True)
class StatsDelta:
    """Counter differences over a window; gauges as at its end (and connections at its start)."""

    window_ns: int
    wait_calls: int
    wait_ns: int
    wait_cpu_ns: int
    wait_cpu_samples: int
    wait_cpu_sample_events: int
    wait_events: int
    loop_iterations: int
    accepted: int
    closed: int
    requests: int
    bytes_in: int
    bytes_out: int
    rejected_fd_setsize: int
    accept_emfile: int
    errors: int
    paused_reads: int
    cpu_user_s: float
    cpu_system_s: float
    current_connections: int  # at the window's end
    peak_connections: int  # process lifetime high-water mark, at the end
    registered_fds: int  # at the end
    start_current_connections: int  # at the window's start
    backend: str
    protocol: str
    pid: int
    wait_instrumented: bool
    fd_number_limit: int | None
    select_probe_error: str | None
    select_probe_status: str | None
    wait_cpu_sample_seed: int | None
    wait_cpu_clock_overhead_ns: int | None

    @property
    def wait_cpu_ns_net(self) -> int | None:
        """CPU time inside the sampled wait calls less the clock reads' own calibrated cost
        (wait_cpu_ns - wait_cpu_samples * wait_cpu_clock_overhead_ns); None if not timed.
        Per sampled call: wait_cpu_ns_net / wait_cpu_samples (servers.sampling)."""
        if self.wait_cpu_clock_overhead_ns is None:
            return None
        return self.wait_cpu_ns - self.wait_cpu_samples * self.wait_cpu_clock_overhead_ns

    @property
    def cpu_s(self) -> float:
        """User + system CPU seconds of the server process over the window (os.times)."""
        return self.cpu_user_s + self.cpu_system_s

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _is_instance(value: Any, hint: Any) -> bool:
    """isinstance for the field types used here (bool is not an int here)."""
    options = typing.get_args(hint) if typing.get_origin(hint) is not None else (hint,)
    for option in options:
        if option is type(None) and value is None:
            return True
        if option in (int, float) and type(value) is option:
            return True
        if option in (str, bool) and type(value) is option:
            return True
    return False
