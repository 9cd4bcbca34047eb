"""LoadConfig: the one frozen object that describes a load run.

It is passed whole to the worker processes (pickled), never copied flag by flag,
and the command line (loadgen.cli) is generated from its fields: a field's
docstring is its ``--help`` text, its default the flag's default.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
from dataclasses import dataclass
from typing import Any, Literal

from loadgen.errors import ConfigError, RemoteNotAllowed

Protocol = Literal["http", "echo"]
Mode = Literal["closed", "open"]


@dataclass(frozen=True, kw_only=True)
class LoadConfig:
    """What load to generate against which target.

    idle_connections are opened and held silent; active_connections send
    requests, one outstanding request each. mode "closed" sends the next
    request as soon as the previous answer arrived; mode "open" sends at a
    total of rate_rps requests/s on a fixed schedule (wrk2's method).

    new_connection_per_request ("churn"): every request of an active
    connection goes over a fresh TCP connection: non-blocking connect, one
    request (HTTP with ``Connection: close``), the full answer, close, and
    the next connection for that slot at once (closed loop) or at its next
    scheduled time (open loop). Latency then includes the connect. Churn
    connections are spread round-robin over several loopback source
    addresses (see loadgen.plan) so TIME_WAIT does not exhaust the ports of
    one address. Idle connections are opened once and held as usual.
    """

    host: str = "127.0.0.1"
    """Target address; a non-loopback address also needs allow_remote."""
    port: int
    """Target TCP port (the server's)."""
    protocol: Protocol = "http"
    """What active connections speak: HTTP/1.1 keep-alive GET, or echo of payload_bytes."""
    idle_connections: int = 0
    """Connections opened before the run and held silent (they never send)."""
    active_connections: int = 8
    """Connections that send requests, one outstanding request each."""
    mode: Mode = "closed"
    """closed: next request as soon as the answer arrived; open: rate_rps on a fixed schedule."""
    rate_rps: float | None = None
    """Open loop only: total requests/s over all active connections (wrk2's schedule)."""
    measure_s: float = 5.0
    """The measured window, seconds (after the warm-up)."""
    warmup_s: float = 1.0
    """Load before the measured window, seconds; not counted in the window's figures."""
    workers: int | None = None
    """Worker processes (None: one per CPU this process may run on, at most one per connection)."""
    cpus: tuple[int, ...] | None = None
    """CPUs to pin the workers to, round-robin (None: not pinned)."""
    payload_bytes: int = 64
    """Echo request size, bytes."""
    connect_rate: float | None = None
    """New connections/s over all workers while connecting (None: as fast as possible)."""
    connect_timeout_s: float = 10.0
    """Seconds one connect may take before it counts as ETIMEDOUT."""
    request_timeout_s: float = 5.0
    """Seconds one request may wait for its answer before it counts as a timeout."""
    release_timeout_s: float = 30.0
    """Seconds a worker holds its connections after the window for the parent's release
    (sent once on_measure_end has returned); then it closes anyway and reports it."""
    allow_remote: bool = False
    """Allow a target that is not a loopback address (this tool can saturate a link)."""
    http_path: str = "/"
    """Path of the HTTP GET."""
    new_connection_per_request: bool = False
    """Churn: a fresh TCP connection for every request (latency includes the connect)."""

    def __post_init__(self) -> None:
        if self.cpus is not None and not isinstance(self.cpus, tuple):
            object.__setattr__(self, "cpus", tuple(self.cpus))
        self.validate()

    def validate(self) -> None:
        """Reject inconsistent settings early, with the remedy in the message."""
        if self.protocol not in ("http", "echo"):
            raise ConfigError(f"protocol {self.protocol!r} is unknown: use 'http' or 'echo'")
        if self.mode not in ("closed", "open"):
            raise ConfigError(f"mode {self.mode!r} is unknown: use 'closed' or 'open'")
        if not 0 < self.port < 65536:
            raise ConfigError(
                f"port {self.port} is not a TCP port: pass the server's port (1-65535)"
            )
        if self.idle_connections < 0 or self.active_connections < 0:
            raise ConfigError("connection counts must be >= 0")
        if self.idle_connections + self.active_connections == 0:
            raise ConfigError("no connections requested: set active_connections and/or idle")
        if self.mode == "open":
            if self.rate_rps is None or self.rate_rps <= 0:
                raise ConfigError("open loop needs rate_rps > 0 (--rate-rps R requests/s)")
            if self.active_connections == 0:
                raise ConfigError("open loop needs at least one active connection")
        elif self.rate_rps is not None:
            raise ConfigError(
                "rate_rps only applies to mode='open'; drop --rate-rps or use --mode open"
            )
        if not 0 < self.measure_s <= 24 * 3600:
            raise ConfigError("measure_s must be in (0, 86400]: every run is bounded")
        if not 0 <= self.warmup_s <= 3600:
            raise ConfigError("warmup_s must be in [0, 3600]")
        if self.workers is not None and self.workers < 1:
            raise ConfigError("workers must be >= 1 (or None for one per allowed CPU)")
        if self.cpus is not None:
            if not self.cpus:
                raise ConfigError("cpus is empty: give at least one CPU number or None")
            allowed = os.sched_getaffinity(0)
            bad = [c for c in self.cpus if c not in allowed]
            if bad:
                raise ConfigError(
                    f"CPUs {bad} are not in this process's affinity set {sorted(allowed)}: "
                    "pick CPUs from that set"
                )
        if self.payload_bytes < 1 or self.payload_bytes > 1 << 20:
            raise ConfigError("payload_bytes must be in [1, 1 MiB]")
        if self.connect_rate is not None and self.connect_rate <= 0:
            raise ConfigError(
                "connect_rate must be > 0 connections/s (or None: as fast as possible)"
            )
        if self.connect_timeout_s <= 0 or self.request_timeout_s <= 0:
            raise ConfigError("connect_timeout_s and request_timeout_s must be > 0")
        if not 0 < self.release_timeout_s <= 3600:
            raise ConfigError("release_timeout_s must be in (0, 3600]: every hold is bounded")
        if not self.http_path.startswith("/"):
            raise ConfigError(f"http_path {self.http_path!r} must start with '/'")

    @property
    def total_connections(self) -> int:
        return self.idle_connections + self.active_connections

    def worker_count(self) -> int:
        """Workers actually started: the requested count, never more than connections."""
        wanted = self.workers if self.workers is not None else len(os.sched_getaffinity(0))
        return max(1, min(wanted, self.total_connections))

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["cpus"] = list(self.cpus) if self.cpus is not None else None
        return data


def resolve_target(cfg: LoadConfig) -> tuple[str, bool]:
    """Resolve cfg.host to an IPv4/IPv6 address; return (address, is_loopback).

    Raises RemoteNotAllowed for a non-loopback target unless cfg.allow_remote:
    this tool can saturate a network link and must not be pointed elsewhere by accident.
    """
    try:
        infos = socket.getaddrinfo(cfg.host, cfg.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve host {cfg.host!r} ({exc}): use an IP address") from exc
    # Prefer IPv4: source-address spreading over 127.0.0.0/8 needs it.
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    address = infos[0][4][0]
    is_loopback = ipaddress.ip_address(address).is_loopback
    if not is_loopback and not cfg.allow_remote:
        raise RemoteNotAllowed(
            f"target {cfg.host} ({address}) is not a loopback address; refusing to send load "
            "to another machine. Pass --allow-remote (allow_remote=True) if you own the target."
        )
    return address, is_loopback
