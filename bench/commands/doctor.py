"""``bench doctor``: check cores, limits, ports and tools; print each problem's remedy."""

from __future__ import annotations

import argparse

from bench.commands.common import EXIT_FAILED, EXIT_OK

HELP = "check cores, limits, ports, tools; print remedies"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--connections",
        type=int,
        default=16000,
        help="size the checks for this many connections per trial (default: full preset)",
    )


def main(args: argparse.Namespace) -> int:
    from bench.measure.doctor import format_checks, run_checks

    checks = run_checks(args.connections)
    print(format_checks(checks))
    return EXIT_FAILED if any(c.severity == "error" and not c.ok for c in checks) else EXIT_OK
