"""The one frozen configuration a server process runs from.

The launcher (`servers.launch`) and the command line (`servers.cli`) both build a
`ServerConfig`; the command line is just its serialisation, so nothing is
copied flag by flag in two places.
"""

from __future__ import annotations

from dataclasses import dataclass

EVENT_LOOP_BACKENDS = ("select", "poll", "epoll", "epoll-et")
REFERENCE_BACKENDS = ("asyncio", "uvloop", "threads")
BACKENDS = EVENT_LOOP_BACKENDS + REFERENCE_BACKENDS
PROTOCOLS = ("echo", "http")

# Per-connection cap on bytes queued for a client that does not read (echo).
# Above it the server stops reading from that connection until the queue drains.
DEFAULT_MAX_QUEUED_BYTES = 1 << 20
# Request heads larger than this get 431 and the connection closed.
DEFAULT_MAX_HEAD_BYTES = 64 << 10
# listen() backlog; the kernel caps it at net.core.somaxconn (4096 here).
DEFAULT_BACKLOG = 4096


@dataclass(frozen=True)
class ServerConfig:
    """Everything a reference server needs; passed whole to the subprocess."""

    backend: str
    protocol: str = "http"
    host: str = "127.0.0.1"
    port: int = 0
    cpu: int | None = None
    backlog: int = DEFAULT_BACKLOG
    http_close: bool = False
    allow_remote: bool = False
    control: bool = True
    instrumentation: bool = True
    max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES
    max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES
    # Lower the soft RLIMIT_NOFILE to this (tests and demonstrations of EMFILE).
    max_fds: int | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(
                f"unknown backend {self.backend!r}: choose one of {', '.join(BACKENDS)}"
            )
        if self.protocol not in PROTOCOLS:
            raise ValueError(
                f"unknown protocol {self.protocol!r}: choose one of {', '.join(PROTOCOLS)}"
            )
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is out of range 0-65535")
        if self.backlog < 1:
            raise ValueError(f"backlog must be >= 1, got {self.backlog}")
        if self.max_queued_bytes < 1 or self.max_head_bytes < 64:
            raise ValueError("max_queued_bytes must be >= 1 and max_head_bytes >= 64")
        if self.max_fds is not None and self.max_fds < 16:
            raise ValueError(
                f"max_fds must be >= 16 (the server needs a few itself), got {self.max_fds}"
            )

    def to_argv(self) -> list[str]:
        """The command-line arguments of `python -m servers` that reproduce this config."""
        argv = [
            "--backend", self.backend,
            "--protocol", self.protocol,
            "--host", self.host,
            "--port", str(self.port),
            "--backlog", str(self.backlog),
            "--max-queued-bytes", str(self.max_queued_bytes),
            "--max-head-bytes", str(self.max_head_bytes),
        ]  # fmt: skip
        if self.cpu is not None:
            argv += ["--cpu", str(self.cpu)]
        if self.http_close:
            argv.append("--http-close")
        if self.allow_remote:
            argv.append("--allow-remote")
        if not self.control:
            argv.append("--no-control")
        if not self.instrumentation:
            argv.append("--no-instrumentation")
        if self.max_fds is not None:
            argv += ["--max-fds", str(self.max_fds)]
        return argv
