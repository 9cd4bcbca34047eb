"""Multiprocess epoll load generator: idle + active connections, open/closed loop, HDR latency.

    from loadgen import LoadConfig, read_result, run_load
    doc = run_load(LoadConfig(port=8080, protocol="http", active_connections=8))
    result = read_result(doc)  # typed view; doc itself is the JSON document

See loadgen.result for the result document's schema, loadgen.run for the
parent's timeline and loadgen.worker_entry for the worker processes. Command
line: ``python -m loadgen --help``.
"""

from loadgen.config import LoadConfig
from loadgen.errors import (
    ConfigError,
    LimitsTooLow,
    LoadgenError,
    LoadInterrupted,
    RemoteNotAllowed,
    ResultFormatError,
    TargetUnreachable,
    UnknownResultVersion,
    WorkerFailed,
)
from loadgen.result import (
    SCHEMA_VERSION,
    ConnectionCounts,
    LatencySummary,
    LoadResult,
    SendLagSummary,
    read_result,
)
from loadgen.run import run_load

__all__ = [
    "SCHEMA_VERSION",
    "ConfigError",
    "ConnectionCounts",
    "LatencySummary",
    "LimitsTooLow",
    "LoadConfig",
    "LoadInterrupted",
    "LoadResult",
    "LoadgenError",
    "RemoteNotAllowed",
    "ResultFormatError",
    "SendLagSummary",
    "TargetUnreachable",
    "UnknownResultVersion",
    "WorkerFailed",
    "read_result",
    "run_load",
]
