"""Multiprocess epoll load generator: idle + active connections, open/closed loop, HDR latency.

    from loadgen import LoadConfig, run_load
    result = run_load(LoadConfig(port=8080, protocol="http", active_connections=8))

See loadgen.result for the result document's schema and loadgen.worker for the
event loop. Command line: ``python -m loadgen --help``.
"""

from loadgen.config import LoadConfig
from loadgen.errors import (
    ConfigError,
    LimitsTooLow,
    LoadgenError,
    LoadInterrupted,
    RemoteNotAllowed,
    TargetUnreachable,
    WorkerFailed,
)
from loadgen.result import SCHEMA_VERSION
from loadgen.run import run_load

__all__ = [
    "SCHEMA_VERSION",
    "ConfigError",
    "LimitsTooLow",
    "LoadConfig",
    "LoadInterrupted",
    "LoadgenError",
    "RemoteNotAllowed",
    "TargetUnreachable",
    "WorkerFailed",
    "run_load",
]
