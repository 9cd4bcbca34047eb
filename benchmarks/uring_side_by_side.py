"""c-epoll, io_uring readiness and the io_uring completion server, side by side in one run.

Issue 18 asks what io_uring buys this project's C loop: server CPU per request and
system calls per request for ``c-epoll`` (level-triggered), ``c-epoll-et`` (the
baseline of io_uring readiness, which is edge-triggered only), ``c-uring-poll``
(multishot poll in the same loop, one io_uring_enter per pass) and ``c-uring`` (the
completion server: multishot accept and receive, sends as submissions). The cells
are registered through the scenario registry (the seam a plugin uses) and measured
with ``bench run``: a fresh server per trial, repetitions interleaved across
backends in a seeded random order, server CPU from schedstat over the window.

System calls: ``perf stat -e raw_syscalls:sys_enter -p SERVER_PID`` over the
measured window (it needs perf, root and tracefs, which this script mounts when
absent), divided by the requests the load generator completed in the window. The
counter costs every backend a little per system call, so the syscall-heavier
backend's CPU per request carries slightly more of it (compare within this script).

    python benchmarks/uring_side_by_side.py [--repetitions 5] [--out results]

It prints, per cell and backend, the median server CPU per request and system calls
per request, and each backend's ratio to c-epoll with a 95% paired t interval over
the repetitions (log differences paired by repetition, t with n-1 df).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.commands import main as bench_main
from bench.measure.drivers import DriverOutput, TrialContext, drive_load_with
from bench.measure.scenarios.registry import Scenario, register
from bench.measure.trial import Cell
from bench.store.results import load
from bench.tables import Mode

NAME = "uring-side"
BACKENDS = ("c-epoll", "c-epoll-et", "c-uring-poll", "c-uring")
RAW_KEY = "server_syscalls"
TRACEFS = Path("/sys/kernel/tracing")


@dataclass(frozen=True)
class Settings:
    rate_rps: float = 1000.0
    active: int = 8


def cells(settings: Settings, cfg: Any) -> list[Cell]:
    return [
        Cell(NAME, Mode.CLOSED, 0, settings.active, None),
        Cell(NAME, Mode.CLOSED, 1000, settings.active, None),
        Cell(NAME, Mode.OPEN, 0, settings.active, settings.rate_rps),
        Cell(NAME, Mode.OPEN, 1000, settings.active, settings.rate_rps),
    ]


def _count_syscalls(pid: int, window_end: float, out: dict[str, Any]) -> None:
    """perf stat on the server's PID until the window ends; the count goes into ``out``."""
    seconds = max(window_end - time.monotonic() - 0.005, 0.05)
    proc = subprocess.run(
        ["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", str(pid),
         "--", "sleep", f"{seconds:.3f}"],
        capture_output=True, text=True, timeout=seconds + 10,
    )  # fmt: skip
    for line in proc.stderr.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2] == "raw_syscalls:sys_enter" and fields[0].isdigit():
            out[RAW_KEY] = int(fields[0])
            out["server_syscalls_window_s"] = seconds
            return
    out["server_syscalls_error"] = proc.stderr.strip()[-300:]


def drive(ctx: TrialContext) -> DriverOutput:
    return drive_load_with(ctx, during=lambda end: _count_syscalls(ctx.server.pid, end, ctx.raw))


def _perf_ready() -> str | None:
    if shutil.which("perf") is None:
        return "perf is not installed (apt-get install linux-perf)"
    if os.geteuid() != 0:
        return "counting another process's system calls needs root"
    if not (TRACEFS / "events").is_dir():
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)], check=False)
    if not (TRACEFS / "events" / "raw_syscalls").is_dir():
        return f"tracefs is not mounted at {TRACEFS} and could not be mounted"
    return None


def paired_ratio(table: pd.DataFrame, col: str, base: str, other: str) -> tuple[float, ...]:
    """base's ``col`` / other's, geometric mean over repetitions, 95% paired t interval."""
    wide = table.pivot_table(index="repetition", columns="backend", values=col, aggfunc="mean")
    if base not in wide or other not in wide:
        return (float("nan"),) * 3
    d = np.log(wide[base]) - np.log(wide[other])
    d = d.dropna()
    if len(d) < 2:
        return (float(np.exp(d.mean())) if len(d) else float("nan"),) + (float("nan"),) * 2
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return float(np.exp(d.mean())), float(np.exp(d.mean() - half)), float(np.exp(d.mean() + half))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=",".join(BACKENDS))
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--out", default="results")
    parser.add_argument("--summarise", metavar="RUN", help="print the table of a finished run")
    args = parser.parse_args(argv)
    if args.summarise:
        return summarise(Path(args.summarise), args.backend)
    reason = _perf_ready()
    if reason:
        print(f"uring_side_by_side: cannot count system calls: {reason}", file=sys.stderr)
        return 2
    register(Scenario(name=NAME, summary="c-epoll vs io_uring, four cells",
                      presets={"standard": Settings()}, cells=cells, driver=drive))  # fmt: skip
    out = Path(args.out)
    before = {p.name for p in out.iterdir()} if out.is_dir() else set()
    code = bench_main(
        ["run", "--preset", "standard", "--scenario", NAME, "--backend", args.backend,
         "--repetitions", str(args.repetitions), "--out", str(out), "--no-charts"]
    )  # fmt: skip
    if code != 0:
        return code
    (run,) = [p for p in out.iterdir() if p.name not in before and (p / "run.json").is_file()]
    return summarise(run, args.backend)


def summarise(run: Path, backends: str) -> int:
    """The table of one run of this script (``--summarise RUN`` prints it again)."""
    trials = load(run).trials
    # A saturated load generator is not a fault for server CPU per request (the server's
    # own CPU time per request it served): C servers in closed loop outrun one client.
    reasons = trials["flag_reasons"].fillna("").astype(str)
    fault = trials["flagged"].fillna(False).astype(bool) & (reasons != "loadgen_saturated")
    ok = trials[(trials["status"] == "ok") & ~fault].copy()
    counts = []
    for raw in ok["raw_file"]:
        doc = json.loads((run / raw).read_text()) if isinstance(raw, str) else {}
        counts.append(doc.get(RAW_KEY))
    ok["syscalls_per_req"] = pd.to_numeric(pd.Series(counts, index=ok.index)) / ok["requests"]
    base = backends.split(",")[0]
    reps = int(trials["repetition"].nunique())
    print(f"\nrun {run.name}: {reps} repetitions, ratios {base}'s / backend's "
          "(above 1: the backend does less), 95% paired t intervals over repetitions")  # fmt: skip
    for (mode, idle), cell in ok.groupby(["mode", "idle_connections"]):
        print(f"\n{mode} loop, {int(idle)} idle + 8 active")
        for backend in backends.split(","):
            mine = cell[cell["backend"] == backend]
            if mine.empty:
                print(f"  {backend:13s} no usable trial")
                continue
            line = (f"  {backend:13s} CPU/req {mine['server_cpu_us_per_req'].median():6.2f} us, "
                    f"syscalls/req {mine['syscalls_per_req'].median():5.2f}")  # fmt: skip
            if backend != base:
                for col, word in (("server_cpu_us_per_req", "CPU"), ("syscalls_per_req", "sys")):
                    r, lo, hi = paired_ratio(cell, col, base, backend)
                    line += f"  {word} x{r:.2f} [{lo:.2f}, {hi:.2f}]"
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
