"""wrk's results as JSON, written by a Lua ``done()`` hook.

wrk is the independent client the test suite and the benchmarks compare
against. Its human output is never scraped: this one hook, shared by every
caller, writes a JSON document to the file named by ``$WRK_JSON_OUT`` once the
run ends (it runs once, in wrk's main Lua state). Latency values are
microseconds in wrk 4.x. The script text never changes; only the environment
carries the output path.
"""

from __future__ import annotations

import os
from pathlib import Path

WRK_JSON_ENV = "WRK_JSON_OUT"

WRK_DONE_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  local f = assert(io.open(os.getenv("WRK_JSON_OUT"), "w"))
  f:write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %.1f, "p90": %.1f, "p99": %.1f, "p99_9": %.1f, ' ..
    '"max": %.1f, "mean": %.3f}, ' ..
    '"latency_p50_us": %.1f, "latency_p99_us": %.1f, "latency_max_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    latency:percentile(50), latency:percentile(99), latency.max))
  f:close()
end
"""


def wrk_env(out: Path) -> dict[str, str]:
    """This process's environment plus the variable that tells the hook where to write."""
    return {**os.environ, WRK_JSON_ENV: str(out)}
