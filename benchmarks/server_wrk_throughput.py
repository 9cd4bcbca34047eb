"""Each backend's HTTP keep-alive throughput under `wrk -t1 -c50`, server and wrk on different
CPUs, repetitions interleaved across backends (A B C A B C) so that drift hits all alike.

    python benchmarks/server_wrk_throughput.py            # 5 s runs, 3 rounds
    python benchmarks/server_wrk_throughput.py --quick    # 1 s runs, 1 round: proves it works
    python benchmarks/server_wrk_throughput.py --json     # one JSON document on stdout

Also reports the server's own CPU per request (getrusage via the control channel), which
is less sensitive to a noisy client CPU than req/s.
"""

from __future__ import annotations

import argparse
from typing import Any

from server_bench_common import (
    BenchmarkError,
    add_common_arguments,
    choose_pinning,
    emit,
    format_table,
    median,
    progress,
    run_metadata,
    run_wrk,
)

from servers import registry
from servers.launch import ServerConfig, available_backends, start_server


def measure_once(backend: str, args: argparse.Namespace, server_cpu: int | None,
                 client_cpu: int | None) -> dict[str, Any]:  # fmt: skip
    """Start the server, warm it up, then one measured wrk run read at its exact edges."""
    cfg = ServerConfig(backend=backend, protocol="http", cpu=server_cpu)
    with start_server(cfg) as srv:
        if args.warmup_s > 0:
            run_wrk(srv.port, connections=args.connections, duration_s=args.warmup_s,
                    cpu=client_cpu)  # fmt: skip
        before = srv.stats()
        result = run_wrk(srv.port, connections=args.connections, duration_s=args.duration_s,
                         cpu=client_cpu)  # fmt: skip
        after = srv.stats()
    window = before.delta(after)
    served = window.requests
    cpu_s = window.cpu_s
    return {
        "backend": backend,
        "req_per_s": result["req_per_s"],
        "wrk_requests": result["requests"],
        "wrk_errors": result["error_count"],
        "latency_p50_us": result["latency_p50_us"],
        "latency_p99_us": result["latency_p99_us"],
        "server_requests": served,
        "server_cpu_us_per_req": cpu_s * 1e6 / served if served else None,
    }


def summarise(trials: list[dict[str, Any]], backends: list[str]) -> list[dict[str, Any]]:
    rows = []
    for backend in backends:
        mine = [t for t in trials if t["backend"] == backend]
        rps = [t["req_per_s"] for t in mine]
        cpu = [t["server_cpu_us_per_req"] for t in mine if t["server_cpu_us_per_req"]]
        rows.append(
            {
                "backend": backend,
                "trials": len(mine),
                "req_per_s_median": median(rps),
                "req_per_s_min": min(rps),
                "req_per_s_max": max(rps),
                "server_cpu_us_per_req": median(cpu) if cpu else None,
                "latency_p99_us": median([t["latency_p99_us"] for t in mine]),
                "wrk_errors": sum(t["wrk_errors"] for t in mine),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--backend", action="append", choices=registry.names(),
                        help="repeatable; default: every backend installed here")  # fmt: skip
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration-s", type=int, default=None, help="default 5 (quick: 1)")
    parser.add_argument("--warmup-s", type=int, default=None, help="default 1 (quick: 0)")
    parser.add_argument("--rounds", type=int, default=None, help="default 3 (quick: 1)")
    args = parser.parse_args(argv)
    args.duration_s = args.duration_s or (1 if args.quick else 5)
    args.warmup_s = args.warmup_s if args.warmup_s is not None else (0 if args.quick else 1)
    rounds = args.rounds or (1 if args.quick else 3)
    backends = args.backend or available_backends()
    pinning = choose_pinning()

    trials: list[dict[str, Any]] = []
    try:
        for round_no in range(rounds):
            for backend in backends:
                progress(f"round {round_no + 1}/{rounds}: {backend}")
                trial = measure_once(backend, args, pinning.server_cpu, pinning.client_cpu)
                trial["round"] = round_no
                trials.append(trial)
    except BenchmarkError as exc:
        parser.exit(2, f"error: {exc}\n")

    rows = summarise(trials, backends)
    meta = run_metadata("server_wrk_throughput", args.quick, pinning)
    meta.update(connections=args.connections, duration_s=args.duration_s, rounds=rounds)
    document = {"metadata": meta, "summary": rows, "trials": trials}
    columns = ["backend", "trials", "req_per_s_median", "req_per_s_min", "req_per_s_max",
               "server_cpu_us_per_req", "latency_p99_us", "wrk_errors"]  # fmt: skip
    header = (
        f"wrk -t1 -c{args.connections} -d{args.duration_s}s, http keep-alive, {pinning.note}, "
        f"{rounds} interleaved round(s), load average {meta['loadavg_1m']:.2f} at start"
    )
    emit(document, header + "\n" + format_table(rows, columns), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
