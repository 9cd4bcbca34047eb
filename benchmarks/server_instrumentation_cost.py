"""Deterministic estimate of the servers' instrumentation cost per request.

Throughput A/B runs (server_instrumentation_overhead.py) move by 10-20%
between 5-second runs on a shared 2-vCPU VM, so they cannot resolve a 3%
effect. This script measures instead what the instrumentation adds to one
loop iteration, in-process with timeit (the exact statements of
servers.eventloop's instrumented loop, with the wait call replaced by a
no-op), and divides by the loop iterations per request and the server CPU
per request that a real server reports under wrk load.

    overhead = added_ns_per_iteration * iterations_per_request / cpu_ns_per_request

Usage: python benchmarks/server_instrumentation_cost.py [--backend epoll] [--duration-s 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from servers.launch import ServerConfig, start_server
from servers.sampling import CallSampler, new_seed
from servers.stats import ServerStats


def added_ns_per_iteration(repeat: int = 7, number: int = 200_000) -> float:
    """Instrumented minus plain loop-iteration cost, nanoseconds (best of `repeat`)."""
    stats = ServerStats("epoll", "http", True)
    clock = time.perf_counter_ns
    cpu_clock = time.thread_time_ns
    events: list[tuple[int, int]] = [(5, 1)] * 4
    next_gap = CallSampler(new_seed()).next_gap
    state = {"countdown": next_gap()}

    def wait() -> list[tuple[int, int]]:
        return events

    def instrumented() -> None:
        state["countdown"] -= 1
        if state["countdown"]:
            t0 = clock()
            ev = wait()
            t1 = clock()
        else:
            c0 = cpu_clock()
            t0 = clock()
            ev = wait()
            t1 = clock()
            stats.wait_cpu_ns += cpu_clock() - c0
            stats.wait_cpu_samples += 1
            stats.wait_cpu_sample_events += len(ev)
            state["countdown"] = next_gap()
        stats.wait_ns += t1 - t0
        stats.wait_calls += 1
        stats.wait_events += len(ev)

    def plain() -> None:
        state["countdown"] -= 1
        wait()

    on = min(timeit.repeat(instrumented, number=number, repeat=repeat)) / number
    off = min(timeit.repeat(plain, number=number, repeat=repeat)) / number
    return (on - off) * 1e9


def server_profile(backend: str, connections: int, duration_s: int) -> dict[str, float]:
    """Loop iterations and CPU per request of a real server under wrk (server CPU 0, wrk CPU 1)."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    with start_server(ServerConfig(backend=backend, protocol="http", cpu=0)) as srv:
        before = srv.stats()
        subprocess.run(
            ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration_s}s",
             f"http://127.0.0.1:{srv.port}/"],
            check=True, capture_output=True,
        )  # fmt: skip
        after = srv.stats()
    window = before.delta(after)
    return {
        "requests": window.requests,
        "iterations_per_request": window.wait_calls / window.requests,
        "cpu_ns_per_request": window.cpu_s * 1e9 / window.requests,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="epoll", choices=["select", "poll", "epoll"])
    parser.add_argument("--duration-s", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    added_ns = added_ns_per_iteration()
    rows = []
    for connections in (1, 8, 50):
        prof = server_profile(args.backend, connections, args.duration_s)
        per_req_ns = added_ns * prof["iterations_per_request"]
        rows.append(
            {
                "backend": args.backend,
                "wrk_connections": connections,
                "added_ns_per_iteration": round(added_ns, 1),
                "iterations_per_request": round(prof["iterations_per_request"], 3),
                "server_cpu_us_per_request": round(prof["cpu_ns_per_request"] / 1000, 2),
                "overhead_pct": round(100 * per_req_ns / prof["cpu_ns_per_request"], 2),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"instrumentation adds {added_ns:.0f} ns per loop iteration (timeit, best of 7)")
    print("wrk_conns  iter/req  server_cpu_us/req  overhead_%")
    for r in rows:
        print(
            f"{r['wrk_connections']:>9}  {r['iterations_per_request']:>8}  "
            f"{r['server_cpu_us_per_request']:>17}  {r['overhead_pct']:>10}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
