"""HAProxy as a benchmark server: its binary, its configuration, its poller line, its counters.

Pure functions and constants, no process (servers.haproxy_server runs it). The
figures below are HAProxy 2.6's (Debian 12's package, `haproxy -vv`: epoll,
poll and select all "test result OK").
"""

from __future__ import annotations

import csv
import os
import re
import shutil
from dataclasses import dataclass

from servers.limits import FD_SETSIZE, SetupError

HAPROXY_ENV = "SELECTBENCH_HAPROXY"
"""Path of the haproxy binary to run instead of the one found on PATH (tests use it)."""
INSTALL_HINT = "apt-get install haproxy"
# Debian installs /usr/sbin/haproxy, which is not on an ordinary user's PATH.
EXTRA_DIRS = ("/usr/sbin", "/usr/local/sbin")

# The pollers HAProxy may pick, disabled one by one from the best (epoll) down:
# -de turns epoll off, -dp poll off (`haproxy --help`).
POLLER_FLAGS: dict[str, tuple[str, ...]] = {
    "select": ("-de", "-dp"),
    "poll": ("-de",),
    "epoll": (),
}

# Descriptors HAProxy 2.6 reserves before its first connection (src/haproxy.c,
# compute_ideal_maxsock, and src/cli.c): 10 fixed, 1 per listener (ours and the
# stats socket), the stats socket's own maxconn (10), and per thread one poller
# descriptor and a two-descriptor wake-up pipe: 25 with one thread. Then it counts
# TWO per connection (the server side a proxy would open; `http-request return`
# opens none, but the reservation stands), so it holds half as many clients per
# descriptor as our servers.
RESERVED_FDS = 25
FDS_PER_CONNECTION = 2
# Its select poller refuses to start when that total exceeds FD_SETSIZE (measured:
# maxconn 500 -> 1025 descriptors):
#   [ALERT] (...) : No polling mechanism available. [...] For reference,
#   FD_SETSIZE=1024 on this system, global.maxconn=500 resulting in a maximum of
#   1025 file descriptors. You should thus reduce global.maxconn by 1. [...]
# so haproxy-select runs with the largest maxconn that fits: 499.
SELECT_MAXCONN = (FD_SETSIZE - RESERVED_FDS) // FDS_PER_CONNECTION

FRONTEND = "hello"  # the one proxy; its row in `show stat` holds the counters
POLLER_LINE = re.compile(r"Using (\S+)\(\) as the polling mechanism")

# Idle connections of the idle-scaling scenario never send for a whole trial, and our
# own servers never time a client out: neither may HAProxy (24 h is far past any trial).
CLIENT_TIMEOUT = "24h"


def find_haproxy() -> str | None:
    """The haproxy binary to run: $SELECTBENCH_HAPROXY, else PATH and /usr/sbin; None if none."""
    override = os.environ.get(HAPROXY_ENV)
    if override:
        return override if os.access(override, os.X_OK) else None
    search = os.pathsep.join(filter(None, (os.environ.get("PATH", ""), *EXTRA_DIRS)))
    return shutil.which("haproxy", path=search)


def missing_reason(backend: str) -> str | None:
    """None when the haproxy binary is there, else the cause and the install line."""
    if find_haproxy() is not None:
        return None
    override = os.environ.get(HAPROXY_ENV)
    if override:
        return (
            f"backend {backend!r}: {HAPROXY_ENV}={override} is not an executable file; "
            f"unset it or {INSTALL_HINT}"
        )
    return (
        f"backend {backend!r} runs HAProxy, and no haproxy binary is on PATH or in "
        f"{', '.join(EXTRA_DIRS)}: {INSTALL_HINT}"
    )


def maxconn_for(mechanism: str, nofile: int) -> int:
    """The largest maxconn HAProxy can run with under RLIMIT_NOFILE `nofile` on `mechanism`."""
    fits = (nofile - RESERVED_FDS) // FDS_PER_CONNECTION
    if mechanism == "select":
        fits = min(fits, SELECT_MAXCONN)
    if fits < 1:
        raise SetupError(
            f"RLIMIT_NOFILE {nofile} leaves HAProxy no connection ({RESERVED_FDS} descriptors "
            f"reserved, {FDS_PER_CONNECTION} per connection): raise max_fds or ulimit -n"
        )
    return fits


def render_config(
    *,
    bind: str,
    backlog: int,
    maxconn: int,
    stats_socket: str,
    http_close: bool,
) -> str:
    """The whole configuration: one thread, one frontend answering every request itself."""
    # httpclose closes the client connection after each response and says so (Connection: close).
    connection_mode = "option httpclose" if http_close else "option http-keep-alive"
    return f"""\
global
    nbthread 1
    maxconn {maxconn}
    stats socket {stats_socket} mode 600 level user

defaults
    mode http
    timeout client {CLIENT_TIMEOUT}
    timeout http-request {CLIENT_TIMEOUT}
    timeout http-keep-alive {CLIENT_TIMEOUT}
    timeout connect 5s
    timeout server 5s

frontend {FRONTEND}
    # fd@N: the listening socket python -m servers opened (and announces in READY).
    bind {bind} backlog {backlog}
    maxconn {maxconn}
    {connection_mode}
    # A connection closed before any byte is no request: without this HAProxy counts
    # it as a 400 answered and an error (measured on 2.6), though it sent nothing.
    option http-ignore-probes
    http-request return status 200 content-type text/plain string "Hello, world!"
"""


SELECT_REFUSAL = re.compile(
    r"No polling mechanism available\..*?(For reference,.*?file descriptors\.)", re.DOTALL
)


def select_refusal_in(output: str) -> str | None:
    """HAProxy's refusal to run select with too many descriptors, in one line, or None."""
    match = SELECT_REFUSAL.search(output)
    if match is None:
        return None
    return "No polling mechanism available. " + " ".join(match.group(1).split())


class PollerMismatch(SetupError):
    """HAProxy runs another poller than the one asked for, or did not say which."""


def poller_in(output: str) -> str | None:
    """The poller named by HAProxy's `-V` line ("Using epoll() as the polling mechanism.")."""
    match = POLLER_LINE.search(output)
    return match.group(1) if match else None


def check_poller(backend: str, asked: str, output: str) -> str:
    """The poller line in `output` when it names `asked`; PollerMismatch otherwise."""
    used = poller_in(output)
    line = POLLER_LINE.search(output)
    if used == asked:
        return line.group(0) if line else ""
    said = f"says {line.group(0)!r}" if line else "printed no poller line"
    raise PollerMismatch(
        f"backend {backend!r} asked HAProxy for {asked} ({' '.join(POLLER_FLAGS[asked]) or 'no'} "
        f"-d flags), but haproxy -V {said}: refusing to measure {used or 'an unknown poller'} "
        f"under the name {asked}"
    )


@dataclass(frozen=True)
class HaproxyCounters:
    """What the stats socket says of the frontend (and the process's loop count)."""

    accepted: int  # conn_tot: connections the frontend accepted
    current_connections: int  # scur
    peak_connections: int  # smax
    requests: int  # responses sent: hrsp_1xx .. hrsp_other
    bytes_in: int  # h1_bytes_in (else bin)
    bytes_out: int  # h1_bytes_out (else bout)
    errors: int  # ereq: invalid requests
    loops: int | None  # `show activity` loops: polling loop iterations


STATS_COMMAND = "show stat;show activity"
RESPONSE_COLUMNS = ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other")


def parse_counters(output: str, frontend: str = FRONTEND) -> HaproxyCounters:
    """Read the answer to STATS_COMMAND; ValueError when the frontend's row is missing.

    The frontend's own row, not `show info`'s CumConns/CurrConns: those also count
    the stats socket's connections, including the one asking.
    """
    lines = output.splitlines()
    header_at = next((i for i, line in enumerate(lines) if line.startswith("# pxname,")), None)
    if header_at is None:
        raise ValueError(f"no 'show stat' table in the stats socket's answer: {output[:200]!r}")
    rows = csv.DictReader(
        (line for line in lines[header_at:] if line.strip()),
        fieldnames=lines[header_at][2:].split(","),
    )
    row = next(
        (r for r in rows if r.get("pxname") == frontend and r.get("svname") == "FRONTEND"), None
    )
    if row is None:
        raise ValueError(f"no FRONTEND row for {frontend!r} in 'show stat'")

    def num(name: str) -> int:
        value = row.get(name) or "0"
        return int(value) if value.isdigit() else 0

    loops = re.search(r"^loops:\s*(\d+)", output, re.MULTILINE)
    return HaproxyCounters(
        accepted=num("conn_tot"),
        current_connections=num("scur"),
        peak_connections=num("smax"),
        requests=sum(num(name) for name in RESPONSE_COLUMNS),
        # The h1 multiplexer's counts are the bytes on the wire; bin and bout count
        # them after HAProxy's conversion to its internal form (measured: a curl
        # exchange of 182 bytes in, 180 out showed bin 164, bout 170).
        bytes_in=num("h1_bytes_in") if "h1_bytes_in" in row else num("bin"),
        bytes_out=num("h1_bytes_out") if "h1_bytes_out" in row else num("bout"),
        errors=num("ereq"),
        loops=int(loops.group(1)) if loops else None,
    )
