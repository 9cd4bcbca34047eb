"""``bench doctor``: check cores, limits, ports and tools; print each problem's remedy."""

from __future__ import annotations

import argparse

from bench.commands.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, err

HELP = "check cores, limits, ports, tools; print remedies"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--connections",
        type=int,
        default=16000,
        help="size the checks for this many connections per trial (default: full preset)",
    )
    parser.add_argument(
        "--cluster",
        metavar="tcp://HOST:8786",
        default=None,
        help="check every worker of this Dask cluster instead (docs/cluster.md)",
    )


def main(args: argparse.Namespace) -> int:
    if args.connections < 1:
        err(f"--connections must be at least 1, got {args.connections}")
        return EXIT_USAGE
    if args.cluster:
        return _cluster(args.cluster, args.connections)
    from bench.measure.machine.doctor import format_checks, run_checks

    checks = run_checks(args.connections)
    print(format_checks(checks))
    return EXIT_FAILED if any(c.severity == "error" and not c.ok for c in checks) else EXIT_OK


def _cluster(address: str, connections: int) -> int:
    from bench.measure.placement.cluster import ClusterError
    from bench.measure.placement.cluster_doctor import check_cluster, failed, format_cluster

    try:
        reports, overall = check_cluster(address, connections)
    except ClusterError as exc:
        err(str(exc))
        return EXIT_USAGE
    print(format_cluster(address, reports, overall))
    return EXIT_FAILED if failed(reports, overall) else EXIT_OK
