"""`python -m servers`: run one reference server in this process.

Prints exactly one line on stdout once listening:
    READY {"port": ..., "control_port": ..., "pid": ..., "backend": ..., ...}
and nothing else. Errors go to stderr with a non-zero exit status.

Two ways in: flags generated from `ServerConfig`'s fields by tyro (for people:
`python -m servers --help`), or `--config-json '<ServerConfig.to_json()>'`, which
`servers.launch` uses and which never imports tyro (its import costs ~80 ms,
`python -X importtime -c "import tyro"`, paid once per trial otherwise).
"""

from __future__ import annotations

import sys
from typing import Any

from servers import registry
from servers.config import ServerConfig
from servers.control import ControlChannel, StdioControl
from servers.limits import (
    SetupError,
    check_bind_address,
    hold_stop_signals,
    open_listener,
    pin_to_cpu,
    raise_fd_limit,
)
from servers.stats import ServerStats, ready_line

PROG = "python -m servers"
CONFIG_JSON_FLAG = "--config-json"


def parse_args(argv: list[str] | None = None) -> ServerConfig:
    """The config named by the command line; ValueError or SystemExit (tyro) when invalid."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == CONFIG_JSON_FLAG:
        if len(args) != 2:
            raise ValueError(f"{CONFIG_JSON_FLAG} takes one JSON object and nothing else")
        return ServerConfig.from_json(args[1])
    import tyro

    return tyro.cli(
        ServerConfig,
        args=args,
        prog=PROG,
        description=(
            "Reference echo/HTTP server on one readiness mechanism. Registered backends: "
            + ", ".join(registry.names())
            + "."
        ),
    )


def serve(config: ServerConfig) -> None:
    """Set up the process, announce READY, and serve until SIGTERM/SIGINT."""
    backend = registry.get(config.backend)
    factory = backend.load_factory()  # before any socket: a missing module fails fast
    check_bind_address(config.host, config.allow_remote)
    if config.cpu is not None:
        pin_to_cpu(config.cpu)
    fd_limit = raise_fd_limit(config.max_fds)
    listener = open_listener(config.host, config.port, config.backlog)
    stats = ServerStats(
        config.backend,
        config.protocol,
        wait_instrumented=config.instrumentation and backend.wait_instrumented,
        fd_number_limit=backend.fd_number_limit,
    )
    hold_stop_signals()  # until server.run() has its handlers: see hold_stop_signals
    server: Any = factory(config, listener, stats)  # may refine stats' start-up facts
    control = ControlChannel(stats) if config.control else None
    sys.stdout.write(
        ready_line(
            stats,
            port=listener.getsockname()[1],
            control_port=control.port if control else None,
            host=config.host,
            fd_limit=fd_limit,
            cpu=config.cpu,
            http_close=config.http_close,
            instrumentation=config.instrumentation,
        )
    )
    sys.stdout.flush()
    if control:
        control.start()
        StdioControl(stats).start()
    try:
        server.run()
    finally:
        if control:
            control.close()


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_args(argv)
    except SetupError as exc:  # a SELECTBENCH_PLUGINS module failed to import
        print(f"servers: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"{PROG}: error: {exc} (see {PROG} --help)", file=sys.stderr)
        return 2
    try:
        serve(config)
    except SetupError as exc:
        print(f"servers: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0
