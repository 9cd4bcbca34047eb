"""Multiprocess epoll load generator: idle + active connections, open/closed loop, HDR latency.

    from loadgen import LoadConfig, LoadResult, run_load
    doc = run_load(LoadConfig(port=8080, protocol="http", active_connections=8))
    result = LoadResult.from_dict(doc)  # typed; doc itself is the JSON document

See loadgen.result for the result and its document, loadgen.report for what
the workers send, loadgen.run for the
parent's timeline and loadgen.worker_entry for the worker processes. Command
line: ``python -m loadgen --help``.
"""

from typing import TYPE_CHECKING, Any

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
    RATE_SHORTFALL_RATIO,
    SCHEMA_VERSION,
    LoadResult,
    rate_shortfall,
)
from loadgen.result_parts import ConnectionCounts, LatencySummary, SendLagSummary

if TYPE_CHECKING:
    from loadgen.run import run_load


def __getattr__(name: str) -> Any:
    # The parent's timeline is imported when asked for: a worker process
    # (loadgen.worker_entry) imports this package and never runs it (its start-up is
    # part of every trial's overhead).
    if name == "run_load":
        from loadgen.run import run_load

        return run_load
    raise AttributeError(f"module 'loadgen' has no attribute {name!r}")


__all__ = [
    "RATE_SHORTFALL_RATIO",
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
    "rate_shortfall",
    "run_load",
]
