"""`python -m servers`: run one reference server in this process.

Prints exactly one line on stdout once listening:
    READY {"port": ..., "control_port": ..., "pid": ..., "backend": ..., ...}
and nothing else. Errors go to stderr with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from servers.config import BACKENDS, PROTOCOLS, ServerConfig
from servers.limits import SetupError, check_bind_address, open_listener, pin_to_cpu, raise_fd_limit
from servers.stats import ControlChannel, ServerStats, StdioControl


def parse_args(argv: list[str] | None = None) -> ServerConfig:
    parser = argparse.ArgumentParser(
        prog="python -m servers",
        description="Reference echo/HTTP server on one readiness mechanism.",
    )
    parser.add_argument("--backend", required=True, choices=BACKENDS)
    parser.add_argument("--protocol", default="http", choices=PROTOCOLS)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (loopback by default)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--cpu", type=int, default=None, help="pin the server to this CPU")
    parser.add_argument("--backlog", type=int, default=4096)
    parser.add_argument("--http-close", action="store_true", help="close after every HTTP response")
    parser.add_argument(
        "--allow-remote", action="store_true", help="permit a non-loopback bind address"
    )
    parser.add_argument(
        "--no-control", dest="control", action="store_false", help="no stats control channel"
    )
    parser.add_argument(
        "--no-instrumentation",
        dest="instrumentation",
        action="store_false",
        help="do not time wait calls (only to measure the instrumentation's own cost)",
    )
    parser.add_argument("--max-queued-bytes", type=int, default=1 << 20)
    parser.add_argument("--max-head-bytes", type=int, default=64 << 10)
    parser.add_argument(
        "--max-fds",
        type=int,
        default=None,
        help="lower the descriptor limit to this (to demonstrate EMFILE handling)",
    )
    ns = parser.parse_args(argv)
    try:
        return ServerConfig(**vars(ns))
    except ValueError as exc:
        parser.error(str(exc))
        raise  # unreachable: parser.error exits


def serve(config: ServerConfig) -> None:
    """Set up the process, announce READY, and serve until SIGTERM/SIGINT."""
    if config.backend == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError as exc:
            raise SetupError(
                "backend 'uvloop' needs the uvloop package, which is not installed: "
                "pip install uvloop (or pip install -e '.[uvloop]')"
            ) from exc
    check_bind_address(config.host, config.allow_remote)
    if config.cpu is not None:
        pin_to_cpu(config.cpu)
    fd_limit = raise_fd_limit(config.max_fds)
    listener = open_listener(config.host, config.port, config.backlog)
    wait_instrumented = config.instrumentation and config.backend not in ("uvloop", "threads")
    stats = ServerStats(config.backend, config.protocol, wait_instrumented)
    control = ControlChannel(stats) if config.control else None

    server: object
    if config.backend in ("asyncio", "uvloop"):
        from servers.asyncio_server import AsyncioServer

        server = AsyncioServer(config, listener, stats, use_uvloop=config.backend == "uvloop")
    elif config.backend == "threads":
        from servers.threaded_server import ThreadedServer

        server = ThreadedServer(config, listener, stats)
    else:
        from servers.backends import make_backend
        from servers.eventloop import EventLoopServer

        server = EventLoopServer(config, make_backend(config.backend), listener, stats)

    ready = {
        "port": listener.getsockname()[1],
        "control_port": control.port if control else None,
        "pid": os.getpid(),
        "backend": config.backend,
        "protocol": config.protocol,
        "host": config.host,
        "fd_limit": fd_limit,
        "cpu": config.cpu,
        "http_close": config.http_close,
        "instrumentation": config.instrumentation,
    }
    sys.stdout.write("READY " + json.dumps(ready) + "\n")
    sys.stdout.flush()
    if control:
        control.start()
        StdioControl(stats).start()
    try:
        server.run()  # type: ignore[attr-defined]
    finally:
        if control:
            control.close()


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        serve(config)
    except SetupError as exc:
        print(f"servers: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0
