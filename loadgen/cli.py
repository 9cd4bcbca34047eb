"""Command line: ``python -m loadgen --port P [--protocol http|echo] [--measure-s S] ...``.

The flags are LoadConfig's fields (generated with tyro; ``--help`` shows each
field's docstring and default), plus ``--out``.

Prints a short human summary to stderr and the result JSON to --out (or
stdout). Exit status: 0 done, 1 the load could not be generated (the message
says why and what to do), 2 bad arguments, 130 interrupted (the partial
result is still written, marked ``"partial": true``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import tyro

from loadgen.config import LoadConfig
from loadgen.errors import LoadgenError, LoadInterrupted
from loadgen.result import LoadResult
from loadgen.run import run_load

EXIT_OK = 0
EXIT_LOADGEN_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DESCRIPTION = (
    "Multiprocess epoll load generator: idle + active connections, closed or open loop, "
    "HdrHistogram latency. Every option but --out is a field of loadgen.LoadConfig. "
    "Exit status: 0 done, 1 the load could not be generated, 2 bad arguments, "
    "130 interrupted (the partial result is still written)."
)


@dataclass(frozen=True)
class CliArgs:
    """The command line: a LoadConfig (flags without prefix) and where to write the result."""

    load: Annotated[LoadConfig, tyro.conf.arg(name="")]
    out: Path | None = None
    """Write the result JSON here (default: stdout)."""


def parse_args(argv: list[str] | None = None) -> CliArgs:
    """Flags from LoadConfig's fields (``--idle-connections``, ``--measure-s``, ...) plus --out.

    A LoadConfig that fails its own validation raises ConfigError (exit 1,
    the message names the remedy); malformed flags exit 2 (tyro/argparse).
    """
    return tyro.cli(
        CliArgs,
        args=sys.argv[1:] if argv is None else argv,
        prog="python -m loadgen",
        description=DESCRIPTION,
        config=(tyro.conf.OmitArgPrefixes,),
    )


def summary(doc: dict[str, Any]) -> str:
    """A few human lines; the JSON is the real output."""
    result = LoadResult.from_dict(doc)
    conns = result.connections
    lat = result.latency_corrected
    config = result.config
    lines = [
        f"{'PARTIAL ' if result.partial else ''}{config['protocol']} "
        f"{config['mode']} loop, {result.measured_duration_s:.2f} s measured",
        f"connections: active {conns.active_established}/{conns.active_requested}, "
        f"idle {conns.idle_established}/{conns.idle_requested} "
        f"({conns.idle_alive_at_end} alive at end), connect {conns.connect_duration_s} s",
        f"requests: {result.requests:,} ({result.throughput_rps:,.0f} req/s), "
        f"errors {result.errors_total} {result.errors if result.errors_total else ''}",
        f"latency us (corrected): p50 {lat.p50} p90 {lat.p90} p99 {lat.p99} "
        f"p99.9 {lat.p99_9} max {lat.max}",
        f"loadgen CPU {result.loadgen_cpu_us_per_req} us/req, max busy "
        f"{result.max_busy_fraction:.0%}{' SATURATED' if result.saturated else ''}",
    ]
    if result.requested_rate_rps is not None:
        lines.append(
            f"rate: requested {result.requested_rate_rps:,.0f}/s, achieved "
            f"{result.achieved_rate_rps or 0:,.0f}/s"
            f"{' RATE SHORTFALL' if result.rate_shortfall else ''}"
        )
    lag = result.send_lag_us
    if lag.count:
        lines.append(f"send lag us: p50 {lag.p50} p99 {lag.p99} max {lag.max}")
    if result.reconnects:
        lines.append(
            f"reconnects: {result.reconnects:,} (the server closed keep-alive connections; "
            f"{result.reconnect_rate_per_s or 0:,.1f}/s in the window)"
        )
    if result.release_timeouts:
        lines.append(
            f"{result.release_timeouts} worker(s) closed their connections before the "
            "parent's release (release_timeout_s)"
        )
    if result.error_samples:
        lines.append("first errors: " + "; ".join(result.error_samples[:3]))
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
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        args = parse_args(argv)
    except LoadgenError as exc:
        print(f"loadgen: error: {exc}", file=sys.stderr)
        return EXIT_LOADGEN_ERROR
    try:
        result = run_load(args.load)
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
