"""Exceptions raised by the load generator.

Every message names the cause and the remedy, so that a user who sees only the
message on the command line knows what to change.
"""

from __future__ import annotations

from typing import Any


class LoadgenError(Exception):
    """Base class: the load could not be generated as configured."""


class ConfigError(LoadgenError):
    """The LoadConfig is inconsistent (bad mode/rate combination, negative counts, ...)."""


class RemoteNotAllowed(LoadgenError):
    """The target is not a loopback address and allow_remote was not given."""


class TargetUnreachable(LoadgenError):
    """Nothing answers at the target (connection refused, timed out, or every connect failed)."""


class LimitsTooLow(LoadgenError):
    """The requested connections cannot fit the descriptor or port limits."""


class WorkerFailed(LoadgenError):
    """A worker process crashed or stopped answering; the traceback is in the message."""


class LoadInterrupted(KeyboardInterrupt):
    """SIGINT arrived during run_load: the workers were stopped and reaped.

    It is a KeyboardInterrupt so that an uncaught Ctrl-C still ends the
    caller, yet the partial result (marked ``partial: true``) travels with it
    in ``.result`` so the caller can still write it.
    """

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__("load generation interrupted; partial result attached")
        self.result = result


class UnknownResultVersion(LoadgenError, ValueError):
    """A result document's schema_version is not one LoadResult.from_dict reads."""


class ResultFormatError(LoadgenError, ValueError):
    """A result document lacks a key its schema_version promises (truncated or edited)."""
