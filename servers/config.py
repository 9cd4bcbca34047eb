"""The one frozen configuration a server process runs from.

`python -m servers --help` is generated from these fields (their docstrings are
the help, their defaults the defaults); `servers.launch` hands the config to
the subprocess whole, as JSON (`ServerConfig.to_json` / `from_json`), so no
field is copied flag by flag anywhere.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Literal

from servers import registry
from servers.sampling import SEED_LIMIT

Protocol = Literal["echo", "http"]
PROTOCOLS: tuple[str, ...] = ("echo", "http")


@dataclass(frozen=True)
class ServerConfig:
    """Everything a reference server needs; passed whole to the subprocess."""

    backend: str
    """A name registered in servers.registry (listed above; SELECTBENCH_PLUGINS adds more)."""
    protocol: Protocol = "http"
    """echo: every byte read is sent back; http: GET/HEAD answer 200 'Hello, world!'."""
    host: str = "127.0.0.1"
    """Bind address; loopback unless allow_remote."""
    port: int = 0
    """TCP port; 0 picks a free one (the READY line says which)."""
    cpu: int | None = None
    """Pin the server process to this CPU."""
    backlog: int = 4096
    """listen() backlog; the kernel caps it at net.core.somaxconn."""
    http_close: bool = False
    """Close the connection after every HTTP response."""
    allow_remote: bool = False
    """Permit a non-loopback bind address (these servers are not hardened)."""
    control: bool = True
    """Serve stats on stdin/stdout and a loopback control port."""
    instrumentation: bool = True
    """Time the wait calls; off only to measure the instrumentation's own cost."""
    max_queued_bytes: int = 1 << 20
    """Bytes queued for a client that does not read, above which reading it pauses."""
    max_head_bytes: int = 64 << 10
    """HTTP request heads larger than this get 431 and the connection closed."""
    max_fds: int | None = None
    """Lower the soft RLIMIT_NOFILE to this (tests and demonstrations of EMFILE)."""
    wait_sample_seed: int | None = None
    """Seed of the draw of wait calls that read the CPU clock; None: a fresh one (recorded)."""

    def __post_init__(self) -> None:
        try:
            backend = registry.get(self.backend)
        except registry.UnknownBackend as exc:
            raise ValueError(str(exc)) from None
        if self.protocol not in PROTOCOLS:
            raise ValueError(
                f"unknown protocol {self.protocol!r}: choose one of {', '.join(PROTOCOLS)}"
            )
        if self.protocol not in backend.protocols:
            raise ValueError(
                f"backend {self.backend!r} does not serve {self.protocol!r}: it serves "
                f"{', '.join(backend.protocols)}"
            )
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is out of range 0-65535: use 0 for a free port")
        if self.backlog < 1:
            raise ValueError(f"backlog must be >= 1, got {self.backlog}")
        if self.max_queued_bytes < 1 or self.max_head_bytes < 64:
            raise ValueError(
                f"max_queued_bytes must be >= 1 and max_head_bytes >= 64, got "
                f"{self.max_queued_bytes} and {self.max_head_bytes}"
            )
        if self.wait_sample_seed is not None and not 0 <= self.wait_sample_seed < SEED_LIMIT:
            raise ValueError(
                f"wait_sample_seed must be 0 <= seed < 2**64 (the sampling PRNG's state), "
                f"got {self.wait_sample_seed}"
            )
        if self.max_fds is not None and self.max_fds < 16:
            raise ValueError(
                f"max_fds must be >= 16 (the server needs a few itself), got {self.max_fds}"
            )

    def to_json(self) -> str:
        """One JSON object with every field: what `python -m servers --config-json` reads."""
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ServerConfig:
        """The inverse of to_json; ValueError names an unknown or missing field."""
        doc: Any = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError(f"--config-json wants a JSON object, got {type(doc).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise ValueError(
                f"--config-json has unknown fields {unknown}: known are {sorted(known)}"
            )
        try:
            return cls(**doc)
        except TypeError as exc:  # a required field is missing
            raise ValueError(f"--config-json: {exc}") from None
