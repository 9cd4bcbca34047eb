"""Split a LoadConfig over worker processes and check it fits the limits first.

Each worker gets an even share of idle and active connections, a CPU (round-
robin over cfg.cpus), the global index of its first active connection (open
loop: staggers the send schedules of all connections evenly across workers)
and the source addresses to bind its connections to.

Why source addresses: connect() from one source address to one destination
slows sharply past ~14,000 connections. Since Linux 4.6 connect() takes the
even ephemeral ports first and leaves the odd ones to bind(); the default
range 32768-60999 has 14,116 even ports, and past them every connect scans
them all before trying an odd one. Measured on the reference VM (Linux 6.18):
18,000 blocking connects from 127.0.0.1 to one listening port (a second
process accepting and holding them), timed per 1,000, took 28-44 ms per
1,000 up to 14,000 and 0.7-1.3 s per 1,000 after. On loopback every
127.x.y.z is local, so binding with IP_BIND_ADDRESS_NO_PORT (port chosen at
connect time per 4-tuple) to 127.0.0.2, 127.0.0.3, ... gives each address
its own port space.

Churn (new_connection_per_request) needs this at any connection count: each
closed connection whose client side closes first (a keep-alive server) keeps
its port in TIME_WAIT for 60 s, so one source address sustains only about
28,000 connections per 60 s (~470/s) to one server port. The churn
connections therefore go round-robin over CHURN_SOURCES addresses:
16 x 28,000 = ~450,000 connections per 60 s, i.e. ~7,500/s sustained, or
~10,000/s for about 45 s. (No SO_LINGER 0: an RST would change what the
server measures.)
"""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass

from loadgen.config import LoadConfig
from loadgen.errors import LimitsTooLow

# Descriptors a worker needs besides its connections: stdio, epoll, timerfd,
# the result pipe, Python's own (random, imports) and some slack.
WORKER_FD_OVERHEAD = 40
# Connections per source address: well below the ~14,000 where connect slows.
CONNECTIONS_PER_SOURCE = 8_000
# Above this many connections in one run, spread them over source addresses.
SPREAD_THRESHOLD = 10_000
# Source addresses for churn runs (new connection per request), see above.
CHURN_SOURCES = 16
EPHEMERAL_PORT_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"


@dataclass(frozen=True)
class WorkerPlan:
    index: int
    cpu: int | None
    idle: int
    active: int
    first_active_index: int  # global index of this worker's first active connection
    first_connection_index: int  # global index of this worker's first connection
    rate_rps: float | None  # this worker's share of the open-loop rate
    address: str  # resolved target address
    sources: tuple[str, ...]  # source addresses to bind (empty: let the kernel choose)


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def fd_hard_limit() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return hard if hard != resource.RLIM_INFINITY else 1 << 20


def ephemeral_port_count() -> int:
    try:
        with open(EPHEMERAL_PORT_RANGE_FILE) as fh:
            low, high = (int(x) for x in fh.read().split())
        return high - low + 1
    except (OSError, ValueError):
        return 28_232


def source_addresses(cfg: LoadConfig, address: str, is_loopback: bool) -> tuple[str, ...]:
    """Source addresses for a run, or () when the kernel's default suffices."""
    total = cfg.total_connections
    ipv4_loopback = is_loopback and ":" not in address
    if cfg.new_connection_per_request and ipv4_loopback:
        count = max(CHURN_SOURCES, math.ceil(total / CONNECTIONS_PER_SOURCE))
        return tuple(f"127.0.0.{2 + i}" for i in range(count))
    if total <= SPREAD_THRESHOLD:
        return ()
    if not is_loopback or ":" in address:
        if total > ephemeral_port_count():
            raise LimitsTooLow(
                f"{total:,} connections to one remote/IPv6 port exceed the "
                f"{ephemeral_port_count():,} ephemeral ports of one source address; "
                "use fewer connections or an IPv4 loopback target"
            )
        return ()
    count = math.ceil(total / CONNECTIONS_PER_SOURCE)
    return tuple(f"127.0.0.{2 + i}" for i in range(count))


def plan_workers(cfg: LoadConfig, address: str, is_loopback: bool) -> list[WorkerPlan]:
    """Divide the connections; raise LimitsTooLow when a worker's share cannot fit."""
    workers = cfg.worker_count()
    idle = _split(cfg.idle_connections, workers)
    active = _split(cfg.active_connections, workers)
    hard = fd_hard_limit()
    biggest = max(i + a for i, a in zip(idle, active, strict=True))
    if biggest + WORKER_FD_OVERHEAD > hard:
        needed_workers = math.ceil(cfg.total_connections / max(1, hard - WORKER_FD_OVERHEAD))
        raise LimitsTooLow(
            f"RLIMIT_NOFILE hard limit is {hard:,}; a worker with {biggest:,} connections needs "
            f"{biggest + WORKER_FD_OVERHEAD:,} descriptors. Use --workers {needed_workers} or more "
            f"(or fewer connections), or raise the limit (ulimit -Hn, needs privileges)."
        )
    sources = source_addresses(cfg, address, is_loopback)
    cpus = cfg.cpus
    plans = []
    first_active = 0
    first_conn = 0
    for i in range(workers):
        rate = None
        if cfg.rate_rps is not None and cfg.active_connections:
            rate = cfg.rate_rps * active[i] / cfg.active_connections
        plans.append(
            WorkerPlan(
                index=i,
                cpu=cpus[i % len(cpus)] if cpus else None,
                idle=idle[i],
                active=active[i],
                first_active_index=first_active,
                first_connection_index=first_conn,
                rate_rps=rate,
                address=address,
                sources=sources,
            )
        )
        first_active += active[i]
        first_conn += idle[i] + active[i]
    return plans
