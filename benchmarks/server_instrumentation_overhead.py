"""Cost of the servers' always-on instrumentation: wrk throughput with it on vs off
(`--no-instrumentation`, ServerConfig(instrumentation=False)), issue 2 target: under 3%.

    python benchmarks/server_instrumentation_overhead.py           # 5 pairs of 5 s runs
    python benchmarks/server_instrumentation_overhead.py --quick   # 3 pairs of 1 s runs
    python benchmarks/server_instrumentation_overhead.py --json

Method: epoll and select, http keep-alive, server pinned to CPU 0, `wrk -t1 -c50` pinned
to CPU 1. Runs alternate on, off, on, off ... (>= 3 pairs) so that slow drift of the
machine hits both alike; each pair gives a ratio on/off, and the report gives the median
ratio and its spread (min..max over pairs). A spread wider than the effect means the
machine was too noisy to resolve it: rerun on a quiet machine with more pairs.
Server CPU per request (getrusage) is reported beside req/s because wrk shares nothing
with the server's CPU and so the server's own cost per request is the more direct view.
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
from servers.launch import ServerConfig, start_server

TARGET_OVERHEAD_PCT = 3.0
# Backends whose loop the switch changes (the others never time their wait).
INSTRUMENTED_BACKENDS = tuple(b.name for b in registry.all_backends() if b.wait_instrumented)


def run_trial(backend: str, instrumentation: bool, args: argparse.Namespace,
              server_cpu: int | None, client_cpu: int | None) -> dict[str, Any]:  # fmt: skip
    cfg = ServerConfig(
        backend=backend, protocol="http", cpu=server_cpu, instrumentation=instrumentation
    )
    with start_server(cfg) as srv:
        if args.warmup_s > 0:
            run_wrk(srv.port, duration_s=args.warmup_s, cpu=client_cpu)
        before = srv.stats()
        result = run_wrk(srv.port, duration_s=args.duration_s, cpu=client_cpu)
        after = srv.stats()
    window = before.delta(after)
    served = window.requests
    # Proof the switch did something: wait calls are only counted when instrumented.
    wait_calls = window.wait_calls
    if instrumentation != (wait_calls > 0):
        raise BenchmarkError(
            f"{backend}: instrumentation={instrumentation} but the server counted "
            f"{wait_calls} wait calls: the --no-instrumentation switch is not working"
        )
    return {
        "backend": backend,
        "instrumentation": instrumentation,
        "req_per_s": result["req_per_s"],
        "wrk_errors": result["error_count"],
        "server_cpu_us_per_req": window.cpu_s * 1e6 / served,
    }


def summarise(backend: str, trials: list[dict[str, Any]]) -> dict[str, Any]:
    on = [t for t in trials if t["backend"] == backend and t["instrumentation"]]
    off = [t for t in trials if t["backend"] == backend and not t["instrumentation"]]
    ratios = [a["req_per_s"] / b["req_per_s"] for a, b in zip(on, off, strict=True)]
    cpu_ratios = [
        a["server_cpu_us_per_req"] / b["server_cpu_us_per_req"]
        for a, b in zip(on, off, strict=True)
    ]
    ratio = median(ratios)
    overhead_pct = (1 - ratio) * 100
    # Judged on every pair, not the median alone: a verdict needs all pairs on one side of
    # the target, and a pair-to-pair spread small enough to resolve a 3% effect at all.
    line = 1 - TARGET_OVERHEAD_PCT / 100
    spread_pct = (max(ratios) - min(ratios)) * 100
    if spread_pct > 2 * TARGET_OVERHEAD_PCT:
        verdict = f"unresolved: pair spread {spread_pct:.0f}% (noisy machine; more pairs)"
    elif min(ratios) >= line:
        verdict = f"under {TARGET_OVERHEAD_PCT:g}%"
    elif max(ratios) < line:
        verdict = f"OVER {TARGET_OVERHEAD_PCT:g}%"
    else:
        verdict = "unresolved: pairs straddle the target"
    return {
        "backend": backend,
        "pairs": len(ratios),
        "req_per_s_on_median": median([t["req_per_s"] for t in on]),
        "req_per_s_off_median": median([t["req_per_s"] for t in off]),
        "ratio_on_off_median": ratio,
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "throughput_overhead_pct": overhead_pct,
        "cpu_per_req_ratio_on_off": median(cpu_ratios),
        "wrk_errors": sum(t["wrk_errors"] for t in on + off),
        "verdict": verdict,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument(
        "--backend",
        action="append",
        choices=INSTRUMENTED_BACKENDS,
        help="repeatable; default: epoll and select",
    )
    parser.add_argument(
        "--pairs", type=int, default=None, help="on/off pairs; default 5 (quick: 3)"
    )
    parser.add_argument("--duration-s", type=int, default=None, help="default 5 (quick: 1)")
    parser.add_argument("--warmup-s", type=int, default=None, help="default 1 (quick: 0)")
    args = parser.parse_args(argv)
    pairs = args.pairs or (3 if args.quick else 5)
    if pairs < 3 and not args.quick:
        parser.exit(2, "error: at least 3 on/off pairs are needed to see the spread\n")
    args.duration_s = args.duration_s or (1 if args.quick else 5)
    args.warmup_s = args.warmup_s if args.warmup_s is not None else (0 if args.quick else 1)
    backends = args.backend or ["epoll", "select"]
    pinning = choose_pinning()

    trials: list[dict[str, Any]] = []
    try:
        for pair in range(pairs):
            for backend in backends:
                # ABBA order: on/off, then off/on, so that a first-of-pair
                # advantage or a slow drift cancels instead of biasing the ratio.
                order = (True, False) if pair % 2 == 0 else (False, True)
                for instrumentation in order:
                    state = "on" if instrumentation else "off"
                    progress(f"pair {pair + 1}/{pairs}: {backend} instrumentation {state}")
                    trial = run_trial(backend, instrumentation, args, pinning.server_cpu,
                                      pinning.client_cpu)  # fmt: skip
                    trial["pair"] = pair
                    trials.append(trial)
    except BenchmarkError as exc:
        parser.exit(2, f"error: {exc}\n")

    rows = [summarise(b, trials) for b in backends]
    meta = run_metadata("server_instrumentation_overhead", args.quick, pinning)
    meta.update(pairs=pairs, duration_s=args.duration_s, wrk="-t1 -c50")
    document = {"metadata": meta, "summary": rows, "trials": trials}
    columns = ["backend", "pairs", "req_per_s_on_median", "req_per_s_off_median",
               "ratio_on_off_median", "ratio_min", "ratio_max", "throughput_overhead_pct",
               "cpu_per_req_ratio_on_off", "wrk_errors", "verdict"]  # fmt: skip
    header = (
        f"instrumentation on vs off, wrk -t1 -c50 -d{args.duration_s}s, {pairs} ABBA-ordered "
        f"pairs, {pinning.note}, load average {meta['loadavg_1m']:.2f} at start"
    )
    emit(document, header + "\n" + format_table(rows, columns), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
