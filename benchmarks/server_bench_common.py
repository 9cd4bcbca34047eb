"""Shared pieces of the benchmarks/server_*.py scripts: wrk with a JSON done() hook, CPU
pinning, run metadata, and output as a table or as one JSON document.

wrk's results come back through its Lua done() hook writing JSON (pyperf's rule: a
structured channel, never regexes over human-readable output).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# wrk's results come as JSON from the project's one Lua done() hook, never scraped.
from bench.measure.wrk import WRK_DONE_LUA as WRK_JSON_LUA  # noqa: E402
from bench.measure.wrk import wrk_env  # noqa: E402

SERVER_CPU = 0
CLIENT_CPU = 1


class BenchmarkError(RuntimeError):
    """A benchmark cannot run here; the message names the cause and the remedy."""


@dataclass(frozen=True)
class Pinning:
    """Where the server and the client run; None means not pinned (fewer than 2 CPUs)."""

    server_cpu: int | None
    client_cpu: int | None
    note: str


def choose_pinning() -> Pinning:
    """Server on CPU 0 and client on CPU 1 when both are ours, else no pinning (and say so)."""
    cpus = os.sched_getaffinity(0)
    if {SERVER_CPU, CLIENT_CPU} <= cpus and shutil.which("taskset"):
        return Pinning(SERVER_CPU, CLIENT_CPU, f"server CPU {SERVER_CPU}, client CPU {CLIENT_CPU}")
    return Pinning(None, None, f"NOT pinned (CPUs {sorted(cpus)}, taskset present: "
                   f"{shutil.which('taskset') is not None}): numbers share CPUs")  # fmt: skip


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise BenchmarkError("wrk is not installed: `apt-get install wrk`")
    return path


def run_wrk(
    port: int,
    *,
    connections: int = 50,
    duration_s: int = 5,
    threads: int = 1,
    cpu: int | None = CLIENT_CPU,
    path: str = "/",
) -> dict[str, Any]:
    """One wrk run against http://127.0.0.1:port; returns its done() JSON plus req_per_s."""
    require_wrk()
    with tempfile.TemporaryDirectory(prefix="wrk_json_") as tmp:
        script = Path(tmp) / "done.lua"
        script.write_text(WRK_JSON_LUA)
        out = Path(tmp) / "wrk.json"
        cmd = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration_s}s",
            "--timeout", "10s",
            "-s", str(script),
            f"http://127.0.0.1:{port}{path}",
        ]  # fmt: skip
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu), *cmd]
        proc = subprocess.run(
            cmd,
            env=wrk_env(out),
            capture_output=True,
            text=True,
            timeout=duration_s + 60,
            check=False,
        )
        if proc.returncode != 0 or not out.exists():
            raise BenchmarkError(
                f"wrk failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
            )
        result: dict[str, Any] = json.loads(out.read_text())
    result["req_per_s"] = result["requests"] / (result["duration_us"] / 1e6)
    result["error_count"] = sum(result["errors"].values())
    return result


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_metadata(benchmark: str, quick: bool, pinning: Pinning | None = None) -> dict[str, Any]:
    """What a reader needs to judge the numbers: machine load, versions, pinning, commit."""
    return {
        "benchmark": benchmark,
        "quick": quick,
        "utc_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": git_commit(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpu_count": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0],
        "pinning": pinning.note if pinning else None,
    }


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def format_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain aligned text table; floats get 3 significant decimals where useful."""

    def cell(value: Any) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, float):
            return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"
        if isinstance(value, int):
            return f"{value:,}"
        return "" if value is None else str(value)

    text_rows = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in text_rows)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    numeric = [
        all(isinstance(r.get(c), int | float) or r.get(c) is None for r in rows) for c in columns
    ]
    lines += [
        "  ".join(
            t.rjust(w) if num else t.ljust(w)
            for t, w, num in zip(row, widths, numeric, strict=True)
        ).rstrip()
        for row in text_rows
    ]
    return "\n".join(lines)


def emit(document: dict[str, Any], table: str, json_target: str | None) -> None:
    """--json (no value): the JSON document alone on stdout; --json PATH: table on stdout and
    JSON written to PATH; no --json: the table only."""
    if json_target == "-":
        print(json.dumps(document, indent=2))
        return
    print(table)
    if json_target:
        Path(json_target).write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nJSON written to {json_target}")


def add_common_arguments(parser: Any) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="a short run that only proves the script works"
    )
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="PATH",
        help="print the results as JSON on stdout, or write them to PATH (table still printed)",
    )


def progress(message: str) -> None:
    """Progress goes to stderr so stdout stays the table or the JSON document."""
    print(message, file=sys.stderr, flush=True)
