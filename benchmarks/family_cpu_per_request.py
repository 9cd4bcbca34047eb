"""Server CPU per request of one mechanism across families, side by side in one run.

Issue 10 asks whether the C twin does no more per request than a full proxy:
``c-epoll``'s server CPU per request (open loop, 0 idle connections, the same
request rate for every backend) against ``haproxy-epoll``'s, with Python
``epoll`` beside them. This script registers a one-cell scenario through the
scenario registry (the same seam a plugin uses) and measures it with
``bench run``, so the numbers come from the ordinary trial protocol: fresh
server per trial, repetitions interleaved across backends, server CPU from
schedstat over the measured window.

    python benchmarks/family_cpu_per_request.py [--backend epoll,c-epoll,haproxy-epoll]
        [--rate 1000] [--repetitions 5] [--measure-s 2] [--out results]

It prints the median and min-max of server CPU per request per backend and
each backend's ratio to the first.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.commands import main as bench_main
from bench.measure.drivers import drive_load
from bench.measure.scenarios.registry import Scenario, register
from bench.measure.trial import Cell
from bench.store.results import load

NAME = "family-cpu"


@dataclass(frozen=True)
class Settings:
    rate_rps: float
    idle: int


def cells(settings: Settings, cfg: Any) -> list[Cell]:
    return [Cell(NAME, "open", settings.idle, 8, settings.rate_rps)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="epoll,c-epoll,haproxy-epoll")
    parser.add_argument("--rate", type=float, default=1000.0, help="requests/s (open loop)")
    parser.add_argument("--idle", type=int, default=0)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--out", default="results")
    args = parser.parse_args(argv)
    register(
        Scenario(
            name=NAME,
            summary="one open-loop cell for every backend",
            presets={"standard": Settings(args.rate, args.idle)},
            cells=cells,
            driver=drive_load,
        )
    )
    out = Path(args.out)
    before = {p.name for p in out.iterdir()} if out.is_dir() else set()
    code = bench_main(
        ["run", "--preset", "standard", "--scenario", NAME, "--backend", args.backend,
         "--repetitions", str(args.repetitions), "--out", str(out), "--no-charts"]
    )  # fmt: skip
    if code != 0:
        return code
    (run,) = [p for p in out.iterdir() if p.name not in before and (p / "run.json").is_file()]
    trials = load(run).trials
    ok = trials[(trials["status"] == "ok") & ~trials["flagged"].fillna(False).astype(bool)]
    per = ok.groupby("backend")["server_cpu_us_per_req"]
    first = args.backend.split(",")[0]
    base = per.median().get(first)
    print(
        f"\nserver CPU per request, open loop {args.rate:g} req/s, {args.idle} idle ({run.name}):"
    )
    for backend in args.backend.split(","):
        if backend not in per.groups:
            print(f"  {backend:15s} no usable trial")
            continue
        v = per.get_group(backend)
        ratio = f"  x{v.median() / base:.2f} of {first}" if base else ""
        print(f"  {backend:15s} median {v.median():7.2f} us  (min {v.min():.2f}, max "
              f"{v.max():.2f}, n={len(v)}){ratio}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
