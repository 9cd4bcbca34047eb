"""Command line: ``python -m loadgen --port P [--protocol http|echo] ...``.

Prints a short human summary to stderr and the result JSON to --out (or
stdout). Exit status: 0 done, 1 the load could not be generated (the message
says why and what to do), 2 bad arguments, 130 interrupted (the partial
result is still written, marked ``"partial": true``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from loadgen.config import LoadConfig
from loadgen.errors import LoadgenError, LoadInterrupted
from loadgen.run import run_load

EXIT_OK = 0
EXIT_LOADGEN_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _cpus(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--cpus wants numbers like 1,2 (got {text!r})") from exc


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m loadgen",
        description="Multiprocess epoll load generator (idle + active connections, "
        "closed or open loop, HdrHistogram latency).",
    )
    p.add_argument("--host", default="127.0.0.1", help="target address (loopback by default)")
    p.add_argument("--port", type=int, required=True, help="target TCP port")
    p.add_argument("--protocol", choices=("http", "echo"), default="http")
    p.add_argument("--idle", type=int, default=0, help="idle connections to open and hold")
    p.add_argument("--active", type=int, default=8, help="connections that send requests")
    p.add_argument("--mode", choices=("closed", "open"), default="closed")
    p.add_argument("--rate", type=float, default=None, help="open loop: total requests/s")
    p.add_argument("--duration", type=float, default=5.0, help="measured window, seconds")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up before measuring, seconds")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: CPUs)")
    p.add_argument("--cpus", type=_cpus, default=None, help="pin workers to CPUs, e.g. 1,2")
    p.add_argument("--payload-bytes", type=int, default=64, help="echo request size")
    p.add_argument("--connect-rate", type=float, default=None, help="connections/s (default: max)")
    p.add_argument("--connect-timeout", type=float, default=10.0, help="seconds per connect")
    p.add_argument("--request-timeout", type=float, default=5.0, help="seconds per request")
    p.add_argument("--http-path", default="/", help="path of the HTTP GET")
    p.add_argument(
        "--new-connection-per-request",
        action="store_true",
        help="churn: a fresh TCP connection for every request (latency includes the connect)",
    )
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback target")
    p.add_argument("--out", type=Path, default=None, help="write the JSON here (default: stdout)")
    return p


def config_from_args(args: argparse.Namespace) -> LoadConfig:
    return LoadConfig(
        host=args.host,
        port=args.port,
        protocol=args.protocol,
        idle_connections=args.idle,
        active_connections=args.active,
        mode=args.mode,
        rate_rps=args.rate,
        measure_s=args.duration,
        warmup_s=args.warmup,
        workers=args.workers,
        cpus=args.cpus,
        payload_bytes=args.payload_bytes,
        connect_rate=args.connect_rate,
        connect_timeout_s=args.connect_timeout,
        request_timeout_s=args.request_timeout,
        allow_remote=args.allow_remote,
        http_path=args.http_path,
        new_connection_per_request=args.new_connection_per_request,
    )


def summary(result: dict[str, Any]) -> str:
    """A few human lines; the JSON is the real output."""
    conns = result["connections"]
    lat = result["latency_us"]["corrected"]
    lines = [
        f"{'PARTIAL ' if result['partial'] else ''}{result['config']['protocol']} "
        f"{result['config']['mode']} loop, {result['measured_duration_s']:.2f} s measured",
        f"connections: active {conns['active_established']}/{conns['active_requested']}, "
        f"idle {conns['idle_established']}/{conns['idle_requested']} "
        f"({conns['idle_alive_at_end']} alive at end), connect {conns['connect_duration_s']} s",
        f"requests: {result['requests']:,} ({result['throughput_rps']:,.0f} req/s), "
        f"errors {result['errors_total']} {result['errors'] if result['errors_total'] else ''}",
        f"latency us (corrected): p50 {lat['p50']} p90 {lat['p90']} p99 {lat['p99']} "
        f"p99.9 {lat['p99_9']} max {lat['max']}",
        f"loadgen CPU {result['loadgen_cpu_us_per_req']} us/req, max busy "
        f"{result['max_busy_fraction']:.0%}{' SATURATED' if result['saturated'] else ''}",
    ]
    if result["requested_rate_rps"] is not None:
        lines.append(
            f"rate: requested {result['requested_rate_rps']:,.0f}/s, achieved "
            f"{result['achieved_rate_rps'] or 0:,.0f}/s"
            f"{' RATE SHORTFALL' if result['rate_shortfall'] else ''}"
        )
    if result["error_samples"]:
        lines.append("first errors: " + "; ".join(result["error_samples"][:3]))
    return "\n".join(lines)


def write_result(result: dict[str, Any], out: Path | None) -> None:
    text = json.dumps(result, indent=1, sort_keys=False) + "\n"
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(out)


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        cfg = config_from_args(args)
        result = run_load(cfg)
    except LoadInterrupted as exc:
        write_result(exc.result, args.out)
        print(summary(exc.result), file=sys.stderr)
        print("interrupted: partial result written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("interrupted before any worker started; nothing to write", file=sys.stderr)
        return EXIT_INTERRUPTED
    except LoadgenError as exc:
        print(f"loadgen: error: {exc}", file=sys.stderr)
        return EXIT_LOADGEN_ERROR
    write_result(result, args.out)
    print(summary(result), file=sys.stderr)
    return EXIT_OK
