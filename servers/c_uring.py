"""c-uring: the io_uring completion server in C (servers/c/uring_server.c).

The server is the C twins' glue (servers.c_server.CLoopServer) on the extension's
completion loop instead of a readiness mechanism: the same protocols, counters,
control channel and signal handling. Importing this module raises ImportError with
the cause and the remedy (servers.uring_support) when the extension was built without
liburing, or when this kernel refuses what the server needs; the registry then reports
c-uring unavailable with that sentence (servers.registry.Backend.unavailable_reason).
"""

from __future__ import annotations

import socket

from servers.c_server import CLoopServer, load_extension
from servers.config import ServerConfig
from servers.stats import ServerStats
from servers.uring_support import describe_probe

_cloop = load_extension()
MECHANISM: str = _cloop.URING_COMPLETION


def unavailable_reason() -> str | None:
    """None when c-uring can run here, else the cause and the remedy."""
    return describe_probe(_cloop.uring_probe())


_reason = unavailable_reason()
if _reason is not None:
    raise ImportError(_reason)


def make_c_uring(config: ServerConfig, listener: socket.socket, stats: ServerStats) -> CLoopServer:
    return CLoopServer(config, listener, stats, MECHANISM)
