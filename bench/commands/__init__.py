"""``python -m bench COMMAND``: one module per subcommand (as asv's ``commands/``).

Each module has ``HELP``, ``add_arguments(parser)`` and ``main(args) -> int``.
Exit statuses: 0 done, 1 failed, 2 bad request, 130 interrupted (Ctrl-C; a
run is kept, marked partial). No traceback reaches the user: a damaged run
folder, a failed write or any other error ends in one line naming the cause
(``BENCH_TRACEBACK=1`` shows the traceback of an error bench did not foresee).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from bench.commands.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Parser,
    UsageError,
    err,
)

__all__ = ["COMMANDS", "EXIT_FAILED", "EXIT_OK", "build_parser", "main"]

# Subcommand -> module under bench.commands, in the order --help lists them.
COMMANDS: dict[str, str] = {
    "run": "run",
    "plot": "plot",
    "report": "report",
    "list": "list_runs",
    "compare": "compare",
    "summarise": "summarise",
    "calibration": "calibration",
    "doctor": "doctor",
}


def _module(name: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"{__name__}.{COMMANDS[name]}")


def build_parser() -> Parser:
    parser = Parser(
        prog="python -m bench",
        description="Measure select vs poll vs epoll servers and judge the claims about them.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS:
        module = _module(name)
        module.add_arguments(sub.add_parser(name, help=module.HELP))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(_module(args.command).main(args))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        return _failed(exc)


def _failed(exc: Exception) -> int:
    """The exit status and one-line message of a command that raised ``exc``."""
    # Imported here, not at the top: bench.store.results imports pandas (0.3 s), which a
    # command refused for its arguments never needs.
    from bench.store.results import (
        RunFolderError,
        RunNotFoundError,
        RunWriteError,
        UnknownSchemaVersionError,
    )

    if isinstance(exc, (RunNotFoundError, UnknownSchemaVersionError, RunFolderError, UsageError)):
        err(str(exc))
        return EXIT_USAGE
    if isinstance(exc, RunWriteError):
        err(str(exc))
        return EXIT_FAILED
    if isinstance(exc, OSError):
        # Writing a report, chart or page: the run's own files are untouched.
        where = f" {exc.filename}" if exc.filename else ""
        err(
            f"cannot write{where}: {exc.strerror or exc}; the run folder's data is intact: "
            "free space or make the folder writable (or copy it somewhere writable), then retry"
        )
        return EXIT_FAILED
    if os.environ.get("BENCH_TRACEBACK"):
        raise exc
    text = str(exc).splitlines()[0] if str(exc) else ""
    err(
        f"unexpected {type(exc).__name__}: {text} (a bug in bench: rerun with "
        "BENCH_TRACEBACK=1 to see where, and report it)"
    )
    return EXIT_FAILED
