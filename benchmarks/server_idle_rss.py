"""RSS growth per idle connection in each reference server (issue 2 target: at most 2 KiB
per connection for the event-loop backends; a C epoll server needs about 1.1 KiB).

    python benchmarks/server_idle_rss.py             # 10,000 idle connections (threads: 2,000)
    python benchmarks/server_idle_rss.py --quick     # 2,000 (threads: 500)
    python benchmarks/server_idle_rss.py --json

Method: start the server (echo by default, or --protocol http; pinned to CPU 0), read
its RSS (psutil), open N idle connections from this process, wait until the server's
own current_connections == N, read RSS again; report (after - before) / N. Connections
are spread over source addresses 127.0.0.2, 127.0.0.3, ... (bind before connect with
IP_BIND_ADDRESS_NO_PORT),
because connects from one source address to one port slow down sharply past ~14,000
(README.md, "Limitations"; the load generator spreads its connections the same way).
Kernel socket memory is not in RSS and is not counted: this is the cost of the server's
own per-connection state.

select is left out (it cannot hold more than ~1,020 connections). threads is measured
at a smaller N: each connection costs a thread stack, so 10,000 would measure the
thread library, not the server's connection state; its row says so.
"""

from __future__ import annotations

import argparse
import errno
import resource
import selectors
import socket
import time
from typing import Any

import psutil
from server_bench_common import (
    BenchmarkError,
    add_common_arguments,
    choose_pinning,
    emit,
    format_table,
    progress,
    run_metadata,
)

from servers import registry
from servers.launch import ServerConfig, available_backends, start_server
from servers.stats import StatsSnapshot

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
CONNECTIONS_PER_SOURCE_ADDRESS = 5000
CONNECT_BATCH = 512
TARGET_BYTES_PER_CONN = 2048
# Every backend that can hold 10,000 connections (select cannot: fd_number_limit).
RSS_BACKENDS = tuple(b.name for b in registry.all_backends() if b.fd_number_limit is None)


def open_idle_connections(port: int, count: int, timeout_s: float = 120.0) -> list[socket.socket]:
    """count established connections to 127.0.0.1:port, spread over source addresses."""
    socks: list[socket.socket] = []
    pending: dict[int, socket.socket] = {}
    deadline = time.monotonic() + timeout_s
    opened = 0
    try:
        with selectors.EpollSelector() as sel:
            while len(socks) < count:
                if time.monotonic() > deadline:
                    raise BenchmarkError(
                        f"only {len(socks)} of {count} connections in {timeout_s} s"
                    )
                while len(pending) < CONNECT_BATCH and opened < count:
                    source = f"127.0.0.{2 + opened // CONNECTIONS_PER_SOURCE_ADDRESS}"
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                    sock.bind((source, 0))
                    sock.setblocking(False)
                    err = sock.connect_ex(("127.0.0.1", port))
                    if err not in (0, errno.EINPROGRESS):
                        sock.close()
                        raise BenchmarkError(f"connect from {source}: {errno.errorcode[err]}")
                    pending[sock.fileno()] = sock
                    sel.register(sock, selectors.EVENT_WRITE)
                    opened += 1
                for key, _mask in sel.select(1.0):
                    sock = pending.pop(key.fd)
                    sel.unregister(sock)
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        sock.close()
                        raise BenchmarkError(f"connect failed: {errno.errorcode.get(err, err)}")
                    socks.append(sock)
    except BaseException:
        for sock in [*socks, *pending.values()]:
            sock.close()
        raise
    return socks


def wait_for_connections(srv: Any, count: int, timeout_s: float = 120.0) -> StatsSnapshot:
    deadline = time.monotonic() + timeout_s
    while True:
        stats = srv.stats()
        if stats.current_connections == count:
            return stats
        if time.monotonic() > deadline:
            raise BenchmarkError(
                f"server holds {stats.current_connections} of {count} connections "
                f"after {timeout_s} s (accept_emfile={stats.accept_emfile})"
            )
        time.sleep(0.05)


def settle_rss(proc: psutil.Process, samples: int = 5, interval_s: float = 0.1) -> int:
    """The RSS after the server has gone quiet: the last of a few samples."""
    rss = proc.memory_info().rss
    for _ in range(samples):
        time.sleep(interval_s)
        rss = proc.memory_info().rss
    return rss


def measure(backend: str, protocol: str, count: int, server_cpu: int | None) -> dict[str, Any]:
    cfg = ServerConfig(backend=backend, protocol=protocol, cpu=server_cpu)
    with start_server(cfg) as srv:
        proc = psutil.Process(srv.pid)
        wait_for_connections(srv, 0)
        rss_before_b = settle_rss(proc)
        socks = open_idle_connections(srv.port, count)
        try:
            wait_for_connections(srv, count)
            rss_after_b = settle_rss(proc)
            threads = proc.num_threads()
        finally:
            for sock in socks:
                sock.close()
    per_conn_b = (rss_after_b - rss_before_b) / count
    has_target = registry.get(backend).family == registry.FAMILY_PYTHON_LOOP
    note = ""
    if backend == "threads":
        note = f"reference point; thread per connection ({threads} threads): stacks dominate"
    elif not has_target:
        note = "reference point: the 2 KiB target is for the event-loop backends"
    elif per_conn_b > TARGET_BYTES_PER_CONN:
        note = f"over the {TARGET_BYTES_PER_CONN} B target"
    return {
        "backend": backend,
        "protocol": protocol,
        "idle_connections": count,
        "rss_before_mib": rss_before_b / 2**20,
        "rss_after_mib": rss_after_b / 2**20,
        "rss_bytes_per_conn": per_conn_b,
        "meets_2kib_target": per_conn_b <= TARGET_BYTES_PER_CONN if has_target else None,
        "note": note,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument(
        "--backend",
        action="append",
        choices=RSS_BACKENDS,
        help="repeatable; default: every backend that can hold the connections",
    )
    parser.add_argument(
        "--connections", type=int, default=None, help="default 10,000 (quick: 2,000)"
    )
    parser.add_argument("--threads-connections", type=int, default=None,
                        help="N for the threads backend; default 2,000 (quick: 500)")  # fmt: skip
    parser.add_argument("--protocol", choices=("echo", "http"), default="echo")
    args = parser.parse_args(argv)
    count = args.connections or (2000 if args.quick else 10_000)
    threads_count = args.threads_connections or (500 if args.quick else 2000)
    soft_fds, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft_fds < count + 100:
        parser.exit(2, f"error: RLIMIT_NOFILE is {soft_fds}; {count} connections need "
                       f"{count + 100}: run `ulimit -n {count + 1000}` first\n")  # fmt: skip
    installed = set(available_backends())
    backends = [b for b in (args.backend or RSS_BACKENDS) if b in installed]
    pinning = choose_pinning()

    rows = []
    try:
        for backend in backends:
            n = threads_count if backend == "threads" else count
            progress(f"{backend}: {n} idle connections")
            rows.append(measure(backend, args.protocol, n, pinning.server_cpu))
    except BenchmarkError as exc:
        parser.exit(2, f"error: {exc}\n")

    meta = run_metadata("server_idle_rss", args.quick, pinning)
    meta.update(idle_connections=count, threads_idle_connections=threads_count)
    document = {"metadata": meta, "results": rows}
    columns = ["backend", "protocol", "idle_connections", "rss_before_mib", "rss_after_mib",
               "rss_bytes_per_conn", "meets_2kib_target", "note"]  # fmt: skip
    header = (
        f"RSS growth per idle {args.protocol} connection (psutil RSS of the server process; "
        f"kernel socket memory not included); select omitted (FD_SETSIZE); {pinning.note}"
    )
    emit(document, header + "\n" + format_table(rows, columns), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
