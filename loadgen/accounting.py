"""Names and sizes of what a worker counts, shared by the workers and the merge.

Kept apart from the worker classes so that the parent (loadgen.merge) can
name the counters without importing a worker.
"""

from __future__ import annotations

import errno
import os

CONNECT_ERROR_KINDS = ("ECONNREFUSED", "EMFILE", "EADDRNOTAVAIL", "ETIMEDOUT", "ECONNRESET")
REQUEST_ERROR_KINDS = ("bad_response", "unexpected_close", "timeout", "send_error")
MAX_ERROR_SAMPLES = 5
# The time series has at most this many intervals; longer runs use wider intervals.
MAX_TIMESERIES_POINTS = 600


def connect_error_kind(err: int) -> str:
    """The CONNECT_ERROR_KINDS name for an errno (ENFILE counts as EMFILE)."""
    name = errno.errorcode.get(err, "other")
    if name == "ENFILE":
        return "EMFILE"
    if name in ("EPIPE", "ECONNABORTED"):
        return "ECONNRESET"
    return name if name in CONNECT_ERROR_KINDS else "other"


def new_connect_errors() -> dict[str, int]:
    return dict.fromkeys((*CONNECT_ERROR_KINDS, "other"), 0)


def new_request_errors() -> dict[str, int]:
    return dict.fromkeys(REQUEST_ERROR_KINDS, 0)


def timeseries_interval_s(measure_s: float) -> int:
    return max(1, int(-(-measure_s // MAX_TIMESERIES_POINTS)))


def rss_bytes() -> int:
    """This process's resident set size (0 where /proc cannot say)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0
