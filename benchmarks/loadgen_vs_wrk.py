"""Load generator vs wrk, and how fast/lean the load generator holds many connections.

    python benchmarks/loadgen_vs_wrk.py            # full: 3 A/B pairs x 5 s at 10, 100, 1000
    python benchmarks/loadgen_vs_wrk.py --quick    # smoke run: 1 pair x 1 s at 10, 100; 10k conns
    python benchmarks/loadgen_vs_wrk.py --out bench.json
    python benchmarks/loadgen_vs_wrk.py --concurrency 1000 --pairs 2 --duration 3 --no-scale

Setup (issue 3): the epoll HTTP reference server pinned to CPU 0; each client
pinned to CPU 1 (loadgen: one worker with cpus=(1,); wrk: ``taskset -c 1 wrk
-t1``). Runs alternate A B A B so that drift in the machine hits both clients.
Closed loop; the target is loadgen/wrk throughput ratio >= 1.0.

Client CPU per request: the loadgen worker's CPU time over its measured
window (psutil, as in its result); wrk's CPU time from psutil sampled on the
wrk process just before it exits, cross-checked with the rusage that wait4
returns (the larger is used; both cover wrk's whole run including connection
setup, as wrk has no warm-up).

wrk's numbers are read only from the JSON that a Lua ``done()`` hook writes,
never from wrk's human output.

Connection scale: time to establish 10,000 and 19,000 connections with one
worker, and the worker's RSS per idle connection at 19,000 (RSS after
connecting minus RSS of the same worker with no idle connections).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loadgen import LoadConfig, run_load  # noqa: E402
from servers.launch import ServerConfig, start_server  # noqa: E402

SERVER_CPU = 0
CLIENT_CPU = 1

from bench.measure.wrk import WRK_DONE_LUA, wrk_env  # noqa: E402


def run_loadgen(port: int, connections: int, duration_s: float, warmup_s: float) -> dict[str, Any]:
    cfg = LoadConfig(
        port=port,
        protocol="http",
        active_connections=connections,
        measure_s=duration_s,
        warmup_s=warmup_s,
        workers=1,
        cpus=(CLIENT_CPU,),
    )
    result = run_load(cfg)
    return {
        "client": "loadgen",
        "connections": connections,
        "rps": result["throughput_rps"],
        "cpu_us_per_req": result["loadgen_cpu_us_per_req"],
        "errors": result["errors_total"],
        "p50_us": result["latency_us"]["corrected"]["p50"],
        "p99_us": result["latency_us"]["corrected"]["p99"],
        "busy_fraction": result["max_busy_fraction"],
        "reconnects": result.get("reconnects_measured", 0),
    }


def run_wrk(port: int, connections: int, duration_s: float, lua: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "wrk.json"
        env = wrk_env(out)
        argv = [
            "taskset", "-c", str(CLIENT_CPU), "wrk", "-t1", f"-c{connections}",
            f"-d{max(1, round(duration_s))}s", "-s", str(lua), f"http://127.0.0.1:{port}/",
        ]  # fmt: skip
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ps = psutil.Process(proc.pid)  # taskset execs wrk: same PID
        psutil_cpu_s = 0.0
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            try:
                t = ps.cpu_times()
                psutil_cpu_s = t.user + t.system
            except psutil.Error:
                pass
            time.sleep(0.05)
        rusage_cpu_s = rusage.ru_utime + rusage.ru_stime
        if not out.exists():
            stderr = proc.stderr.read() if proc.stderr else b""
            raise RuntimeError(f"wrk wrote no JSON (exit {proc.returncode}): {stderr!r}")
        data = json.loads(out.read_text())
    cpu_s = max(psutil_cpu_s, rusage_cpu_s)
    requests = data["requests"]
    return {
        "client": "wrk",
        "connections": connections,
        "rps": round(requests / (data["duration_us"] / 1e6), 3),
        "cpu_us_per_req": round(cpu_s * 1e6 / requests, 3) if requests else None,
        "errors": sum(data["errors"].values()),
        "p50_us": data["latency_us"]["p50"],
        "p99_us": data["latency_us"]["p99"],
    }


def compare(port: int, levels: list[int], pairs: int, duration_s: float, lua: Path) -> list[dict]:
    rows = []
    for connections in levels:
        for pair in range(pairs):
            for runner in ("loadgen", "wrk"):
                if runner == "loadgen":
                    row = run_loadgen(port, connections, duration_s, warmup_s=1.0)
                else:
                    row = run_wrk(port, connections, duration_s, lua)
                row["pair"] = pair
                rows.append(row)
                print(
                    f"  c={connections:5d} pair {pair} {runner:8s} {row['rps']:10,.0f} req/s "
                    f"{row['cpu_us_per_req'] or 0:7.2f} us/req CPU  errors {row['errors']}"
                    f"  reconnects {row.get('reconnects', '-')}",
                    file=sys.stderr,
                )
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for connections in sorted({r["connections"] for r in rows}):
        lg = [r for r in rows if r["connections"] == connections and r["client"] == "loadgen"]
        wk = [r for r in rows if r["connections"] == connections and r["client"] == "wrk"]
        ratios = [a["rps"] / b["rps"] for a, b in zip(lg, wk, strict=True) if b["rps"]]
        out.append(
            {
                "connections": connections,
                "loadgen_rps_median": statistics.median(r["rps"] for r in lg),
                "wrk_rps_median": statistics.median(r["rps"] for r in wk),
                "ratio_median": round(statistics.median(ratios), 3) if ratios else None,
                "ratio_min": round(min(ratios), 3) if ratios else None,
                "loadgen_cpu_us_per_req_median": statistics.median(
                    r["cpu_us_per_req"] or 0 for r in lg
                ),
                "wrk_cpu_us_per_req_median": statistics.median(
                    r["cpu_us_per_req"] or 0 for r in wk
                ),
            }
        )
    return out


def connection_scale(port: int, counts: list[int]) -> list[dict]:
    """Connect time for `counts` idle connections with one worker, and RSS per idle connection."""
    baseline = run_load(
        LoadConfig(port=port, idle_connections=0, active_connections=1, measure_s=0.3,
                   warmup_s=0.0, workers=1, cpus=(CLIENT_CPU,))
    )  # fmt: skip
    base_rss = baseline["workers"][0]["rss_bytes_after_connect"]
    rows = []
    for count in counts:
        cfg = LoadConfig(
            port=port, idle_connections=count - 1, active_connections=1, measure_s=0.3,
            warmup_s=0.0, workers=1, cpus=(CLIENT_CPU,),
        )  # fmt: skip
        result = run_load(cfg)
        conns = result["connections"]
        established = conns["idle_established"] + conns["active_established"]
        rss = result["workers"][0]["rss_bytes_after_connect"]
        rows.append(
            {
                "connections": count,
                "established": established,
                "connect_s": conns["connect_duration_s"],
                "rss_bytes": rss,
                "rss_bytes_per_idle_connection": round((rss - base_rss) / max(1, count - 1), 1),
                "idle_alive_at_end": conns["idle_alive_at_end"],
                "connect_errors": {k: v for k, v in conns["connect_errors"].items() if v},
            }
        )
        print(
            f"  {count:6,d} connections: established {established:,} in "
            f"{conns['connect_duration_s']:.3f} s, RSS/idle conn "
            f"{rows[-1]['rss_bytes_per_idle_connection']:.0f} B",
            file=sys.stderr,
        )
        time.sleep(1.0)  # let the server close the previous batch
    return rows


NGINX_CONF = """
worker_processes 1;
daemon off;
master_process off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 20000; }}
http {{
    access_log off;
    keepalive_requests 1000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "Hello, world!"; }}
    }}
}}
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(target: str, tmp: Path) -> Iterator[tuple[int, int]]:
    """(pid, port) of the server under test, pinned to SERVER_CPU, stopped by PID on exit."""
    if target == "epoll":
        with start_server(ServerConfig(backend="epoll", protocol="http", cpu=SERVER_CPU)) as srv:
            yield srv.pid, srv.port
        return
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port = _free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port))
    proc = subprocess.Popen(
        ["taskset", "-c", str(SERVER_CPU), nginx, "-c", str(conf), "-p", str(tmp)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket_connect(port):
                    break
            except OSError:
                time.sleep(0.05)
        yield proc.pid, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def socket_connect(port: int) -> Any:
    import socket

    return socket.create_connection(("127.0.0.1", port), timeout=1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short smoke run (1 pair x 1 s)")
    p.add_argument("--out", type=Path, default=None, help="write all numbers as JSON here")
    p.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=None,
        help="connection levels to compare (default 10 100 1000; --quick: 10 100)",
    )
    p.add_argument("--pairs", type=int, default=None, help="A/B pairs per level (default 3)")
    p.add_argument("--duration", type=float, default=None, help="seconds per run (default 5)")
    p.add_argument("--no-scale", action="store_true", help="skip the connection-scale part")
    p.add_argument(
        "--target",
        choices=("epoll", "nginx"),
        default="epoll",
        help="the server: the Python epoll reference server, or nginx (Debian's), which "
        "closes a keep-alive connection after keepalive_requests (1,000) requests",
    )
    args = p.parse_args(argv)
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("wrk and taskset are needed: apt-get install wrk util-linux", file=sys.stderr)
        return 1
    if len(os.sched_getaffinity(0)) < 2:
        print("needs 2 CPUs (server on CPU 0, client on CPU 1)", file=sys.stderr)
        return 1
    levels, pairs, duration_s, scale = [10, 100, 1000], 3, 5.0, [10_000, 19_000]
    if args.quick:
        levels, pairs, duration_s, scale = [10, 100], 1, 1.0, [10_000]
    if args.concurrency:
        levels = args.concurrency
    if args.pairs is not None:
        pairs = max(1, args.pairs)
    if args.duration is not None:
        duration_s = args.duration
    if args.no_scale:
        scale = []
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "done.lua"
        lua.write_text(WRK_DONE_LUA)
        with _server(args.target, Path(tmp)) as (pid, port):
            print(f"{args.target} http server pid {pid} on CPU {SERVER_CPU}, port {port}",
                  file=sys.stderr)  # fmt: skip
            rows = compare(port, levels, pairs, duration_s, lua)
            table = summarise(rows)
            scale_rows = connection_scale(port, scale)
    print(f"\n{'conns':>6} {'loadgen rps':>12} {'wrk rps':>10} {'ratio':>6} {'min':>6} "
          f"{'lg us/req':>9} {'wrk us/req':>10}")  # fmt: skip
    for r in table:
        print(
            f"{r['connections']:6d} {r['loadgen_rps_median']:12,.0f} {r['wrk_rps_median']:10,.0f} "
            f"{r['ratio_median']:6.3f} {r['ratio_min']:6.3f} "
            f"{r['loadgen_cpu_us_per_req_median']:9.2f} {r['wrk_cpu_us_per_req_median']:10.2f}"
        )
    for r in scale_rows:
        print(
            f"{r['connections']:,} connections: {r['connect_s']:.3f} s to establish "
            f"({r['established']:,} ok), RSS per idle connection "
            f"{r['rss_bytes_per_idle_connection']:.0f} B"
        )
    if args.out:
        args.out.write_text(
            json.dumps(
                {"quick": args.quick, "runs": rows, "summary": table, "scale": scale_rows},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
