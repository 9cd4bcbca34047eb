"""Load generator vs wrk (turnaround), the load generator's send lag, and its connection scale.

    python benchmarks/loadgen_vs_wrk.py                  # full (issue 21); see --help
    python benchmarks/loadgen_vs_wrk.py --quick          # smoke run: 1 pair x 1 s, 1 s lags
    python benchmarks/loadgen_vs_wrk.py --out bench.json
    python benchmarks/loadgen_vs_wrk.py --targets epoll --concurrency 10 100 1000 --no-lag

Turnaround (issues 3 and 21): closed loop, keep-alive HTTP, each server pinned to
CPU 0 and each client to CPU 1 (loadgen: one worker with cpus=(1,); wrk:
``taskset -c 1 wrk -t1``). Runs alternate A B A B A B (loadgen, wrk) so that
drift in the machine hits both clients; the ratio is loadgen/wrk throughput per
pair, reported as the median and the minimum over pairs. Targets: the Python
epoll server (epoll), its C twin (c-epoll), and Debian's nginx keeping
connections open (nginx) or closing each after 1,000 requests (nginx-close;
the load generator reconnects); an nginx target is skipped, with the reason,
where nginx is not installed. The bar: a median ratio of at least 1.0.

Why a ratio is what it is (issue 21): each run also reports the server's CPU per
request, its events per wake-up and the fraction of the run it waited (its own
counters; CPU and context switches from /proc for nginx), and the client's
voluntary context switches per request (its sleeps in epoll, each ended by one of
the server's answers, whose wake-up the server pays). Both clients send the same
request (the request line and Host; loadgen.protocols.build_request), so the
server parses the same bytes from either; ``--loadgen-poll-us N`` makes
the load generator's core poll N us before it blocks (SELECTBENCH_LOADGEN_POLL_NS,
loadgen/c/core.c has the measurement).

Client CPU per request: the loadgen worker's CPU time over its measured
window (psutil, as in its result); wrk's CPU time from psutil sampled on the
wrk process just before it exits, cross-checked with the rusage that wait4
returns (the larger is used; both cover wrk's whole run including connection
setup, as wrk has no warm-up). wrk's numbers are read only from the JSON that a
Lua ``done()`` hook writes, never from wrk's human output.

Send lag (issue 21): open loop at 1,000 and 10,000 req/s over 8 and 100
connections against the Python epoll server, one worker on CPU 1: the send
lag's p50/p99/max (actual minus intended send time), and the corrected and
uncorrected latency p50 beside it. ``--lag-cores c,python`` measures the
compiled core and the Python loop (SELECTBENCH_LOADGEN_CORE) in turn. The
wake-up error of epoll_pwait2 on the client CPU (the measurement behind the
core's spin margin, loadgen/c/core.c) is printed with it.

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
import socket
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

from bench.measure.wrk import WRK_DONE_LUA, wrk_env  # noqa: E402
from loadgen import LoadConfig, run_load  # noqa: E402
from loadgen.core import CORE_ENV, DEFAULT_POLL_NS, POLL_ENV, load_core  # noqa: E402
from servers.launch import ServerConfig, start_server  # noqa: E402

SERVER_CPU = 0
CLIENT_CPU = 1
TARGETS = ("epoll", "c-epoll", "nginx", "nginx-close")
# nginx's keepalive_requests: 1,000 is nginx's default (it closes, the client reconnects);
# "nginx" keeps every connection open for the whole run.
NGINX_KEEPALIVE_REQUESTS = {"nginx": 1_000_000_000, "nginx-close": 1000}
LAG_RATES = (1000.0, 10_000.0)
# ServerProbe's columns and the client's sleeps, summarised per client.
SERVER_COLUMNS = (
    "client_vcsw_per_req",
    "server_cpu_us_per_req",
    "server_vcsw_per_req",
    "server_events_per_wait",
)
LAG_CONNECTIONS = (8, 100)


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
    # The worker's context switches over the measured window: each voluntary one is a sleep
    # in epoll that the server's next answer has to end (loadgen/c/core.c on its cost).
    switches: dict[str, Any] = {}

    def count(key: str) -> None:
        workers = switches.setdefault("workers", psutil.Process().children())
        switches[key] = sum(w.num_ctx_switches().voluntary for w in workers)

    result = run_load(
        cfg, on_measure_start=lambda: count("start"), on_measure_end=lambda: count("end")
    )
    requests = result["throughput_rps"] * duration_s
    return {
        "client": "loadgen",
        "client_vcsw_per_req": round((switches["end"] - switches["start"]) / requests, 4)
        if requests
        else None,
        "core": result["loadgen_core"],
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
        # over wrk's whole run (it has no warm-up), from the rusage wait4 returns
        "client_vcsw_per_req": round(rusage.ru_nvcsw / requests, 4) if requests else None,
        "errors": sum(data["errors"].values()),
        "p50_us": data["latency_us"]["p50"],
        "p99_us": data["latency_us"]["p99"],
    }


class ServerProbe:
    """The server's side of a run: its CPU per request, its context switches per request
    and, for the project's own servers, events per wake and the fraction of the run it
    waited. Read over each client's whole run (connection set-up and warm-up included,
    for both clients alike), so the columns compare clients, not windows."""

    def __init__(self, pid: int, stats: Any | None) -> None:
        self.pid = pid
        self.stats = stats  # ServerProcess.stats for the project's servers, else None

    def read(self) -> dict[str, float]:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        out = {"cpu_s": (int(fields[11]) + int(fields[12])) / tick, "t": time.monotonic()}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                    out[key] = float(value)
        if self.stats is not None:
            snap = self.stats()
            out |= {"requests": snap.requests, "wait_calls": snap.wait_calls,
                    "wait_events": snap.wait_events, "wait_s": snap.wait_ns / 1e9}  # fmt: skip
        return out

    @staticmethod
    def delta(a: dict[str, float], b: dict[str, float], client_requests: float) -> dict[str, Any]:
        d = {k: b[k] - a[k] for k in a}
        requests = d.get("requests") or client_requests or 1
        row: dict[str, Any] = {
            "server_cpu_us_per_req": round(d["cpu_s"] * 1e6 / requests, 3),
            "server_vcsw_per_req": round(d["voluntary_ctxt_switches"] / requests, 4),
            "server_ivcsw_per_req": round(d["nonvoluntary_ctxt_switches"] / requests, 4),
        }
        if d.get("wait_calls"):
            row["server_events_per_wait"] = round(d["wait_events"] / d["wait_calls"], 2)
            row["server_wait_fraction"] = round(d["wait_s"] / d["t"], 4)
        return row


def compare(
    port: int, levels: list[int], pairs: int, duration_s: float, lua: Path, probe: ServerProbe
) -> list[dict]:
    """A B A B ...: loadgen then wrk, `pairs` times per connection level."""
    rows = []
    for connections in levels:
        for pair in range(pairs):
            for runner in ("loadgen", "wrk"):
                before = probe.read()
                if runner == "loadgen":
                    row = run_loadgen(port, connections, duration_s, warmup_s=1.0)
                else:
                    row = run_wrk(port, connections, duration_s, lua)
                after = probe.read()
                row |= probe.delta(before, after, row["rps"] * (after["t"] - before["t"]))
                row["pair"] = pair
                rows.append(row)
                server = " ".join(
                    f"{k.removesuffix('_per_req')} {v}"
                    for k, v in row.items()
                    if k.startswith(("server_", "client_"))
                )
                print(
                    f"  c={connections:5d} pair {pair} {runner:8s} {row['rps']:10,.0f} req/s "
                    f"{row['cpu_us_per_req'] or 0:7.2f} us/req CPU  errors {row['errors']}"
                    f"  reconnects {row.get('reconnects', '-')}  core {row.get('core', '-')}"
                    f"  {server}",
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
                "loadgen_core": sorted({r["core"] for r in lg}),
                "loadgen_rps_median": statistics.median(r["rps"] for r in lg),
                "wrk_rps_median": statistics.median(r["rps"] for r in wk),
                "ratios": [round(r, 3) for r in ratios],
                "ratio_median": round(statistics.median(ratios), 3) if ratios else None,
                "ratio_min": round(min(ratios), 3) if ratios else None,
                "loadgen_cpu_us_per_req_median": statistics.median(
                    r["cpu_us_per_req"] or 0 for r in lg
                ),
                "wrk_cpu_us_per_req_median": statistics.median(
                    r["cpu_us_per_req"] or 0 for r in wk
                ),
                **{
                    f"{client}_{key}_median": round(statistics.median(r[key] for r in runs), 4)
                    for client, runs in (("loadgen", lg), ("wrk", wk))
                    for key in SERVER_COLUMNS
                    if all(r.get(key) is not None for r in runs)
                },
            }
        )
    return out


def send_lag(port: int, cores: list[str], duration_s: float) -> list[dict]:
    """Open loop at LAG_RATES x LAG_CONNECTIONS, one worker on CLIENT_CPU, per core."""
    rows = []
    for core in cores:
        os.environ[CORE_ENV] = core  # read by the worker process
        try:
            for rate in LAG_RATES:
                for connections in LAG_CONNECTIONS:
                    cfg = LoadConfig(
                        port=port, protocol="http", active_connections=connections, mode="open",
                        rate_rps=rate, measure_s=duration_s, warmup_s=1.0, workers=1,
                        cpus=(CLIENT_CPU,),
                    )  # fmt: skip
                    result = run_load(cfg)
                    lag = result["send_lag_us"]
                    lat = result["latency_us"]
                    row = {
                        "core": result["loadgen_core"],
                        "rate_rps": rate,
                        "connections": connections,
                        "send_lag_p50_us": lag["p50"],
                        "send_lag_p99_us": lag["p99"],
                        "send_lag_max_us": lag["max"],
                        "corrected_p50_us": lat["corrected"]["p50"],
                        "uncorrected_p50_us": lat["uncorrected"]["p50"],
                        "corrected_p99_us": lat["corrected"]["p99"],
                        "achieved_rate_ratio": result["achieved_rate_ratio"],
                        "busy_fraction": result["max_busy_fraction"],
                        "errors": result["errors_total"],
                    }
                    rows.append(row)
                    print(
                        f"  {row['core']:6s} {rate:8,.0f} req/s x {connections:3d} conns: send "
                        f"lag p50 {lag['p50']} p99 {lag['p99']} max {lag['max']} us; latency "
                        f"p50 {row['corrected_p50_us']} (uncorrected "
                        f"{row['uncorrected_p50_us']}) us; busy {row['busy_fraction']:.2f}",
                        file=sys.stderr,
                    )
        finally:
            os.environ.pop(CORE_ENV, None)
    return rows


def oversleep(samples: int) -> dict[str, Any] | None:
    """epoll_pwait2's wake-up error on CLIENT_CPU, and sends paced by the core's plan with
    and without its naps (the spin margin and the naps rest on these)."""
    core = load_core()
    if core is None:
        return None
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {CLIENT_CPU})
    try:
        out: dict[str, Any] = {"spin_ns": core.SPIN_NS}
        for sleep_ns in (100_000, 1_000_000):
            late = sorted(core.oversleep(samples, sleep_ns))
            out[f"sleep_{sleep_ns}_ns"] = {
                f"p{q}": late[min(len(late) - 1, int(len(late) * q / 100))] for q in (50, 90, 99)
            }
        # Sends paced every 1 ms by the core's own plan, with its naps and without, A B A B:
        # how many went more than 25 us late (the measurement behind NAP_NS, core.c).
        for _round in range(2):
            for label, nap in (("no_naps", 0), ("naps", core.NAP_NS)):
                lags = core.paced_lags(samples, 1_000_000, core.SPIN_NS, nap)
                late_sends = out.setdefault(f"paced_1ms_{label}_late_over_25us", [])
                late_sends.append(sum(1 for lag in lags if lag > 25_000))
        out["paced_sends_per_round"] = samples
    finally:
        os.sched_setaffinity(0, before)
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
    keepalive_requests {keepalive_requests};
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "Hello, world!"; }}
    }}
}}
"""


def nginx_path() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).is_file()), None
    )


def skip_reason(target: str) -> str | None:
    """Why a target cannot run here (None: it can)."""
    if target.startswith("nginx") and nginx_path() is None:
        return "nginx is not installed (apt-get install nginx-light)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(target: str, tmp: Path) -> Iterator[tuple[int, int, ServerProbe]]:
    """(pid, port, probe) of the server under test, pinned to SERVER_CPU, stopped by PID on
    exit."""
    if not target.startswith("nginx"):
        with start_server(ServerConfig(backend=target, protocol="http", cpu=SERVER_CPU)) as srv:
            yield srv.pid, srv.port, ServerProbe(srv.pid, srv.stats)
        return
    nginx = nginx_path()
    assert nginx is not None  # skip_reason said so
    port = _free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(tmp=tmp, port=port, keepalive_requests=NGINX_KEEPALIVE_REQUESTS[target])
    )
    proc = subprocess.Popen(
        ["taskset", "-c", str(SERVER_CPU), nginx, "-c", str(conf), "-p", str(tmp)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        yield proc.pid, port, ServerProbe(proc.pid, None)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def print_tables(doc: dict[str, Any]) -> None:
    print(f"\n{'target':12s} {'conns':>6} {'loadgen rps':>12} {'wrk rps':>10} {'ratio':>6} "
          f"{'min':>6} {'lg us/req':>9} {'wrk us/req':>10}  core")  # fmt: skip
    for target, part in doc["turnaround"].items():
        if "skipped" in part:
            print(f"{target:12s} skipped: {part['skipped']}")
            continue
        for r in part["summary"]:
            print(
                f"{target:12s} {r['connections']:6d} {r['loadgen_rps_median']:12,.0f} "
                f"{r['wrk_rps_median']:10,.0f} {r['ratio_median']:6.3f} {r['ratio_min']:6.3f} "
                f"{r['loadgen_cpu_us_per_req_median']:9.2f} "
                f"{r['wrk_cpu_us_per_req_median']:10.2f}  {','.join(r['loadgen_core'])}"
            )
            server = "  ".join(
                f"{key.removesuffix('_per_req')} {r.get('loadgen_' + key + '_median', '-')}"
                f"/{r.get('wrk_' + key + '_median', '-')}"
                for key in SERVER_COLUMNS
            )
            print(f"{'':12s} per request, loadgen/wrk: {server}")
    if doc["send_lag"]:
        print(f"\n{'core':6s} {'req/s':>7} {'conns':>5} {'lag p50':>8} {'lag p99':>8} "
              f"{'lag max':>8} {'lat p50':>8} {'uncorr':>8} {'busy':>5}  (us)")  # fmt: skip
        for r in doc["send_lag"]:
            print(
                f"{r['core']:6s} {r['rate_rps']:7,.0f} {r['connections']:5d} "
                f"{r['send_lag_p50_us']!s:>8} {r['send_lag_p99_us']!s:>8} "
                f"{r['send_lag_max_us']!s:>8} {r['corrected_p50_us']!s:>8} "
                f"{r['uncorrected_p50_us']!s:>8} {r['busy_fraction']:5.2f}"
            )
    if doc["oversleep"]:
        print(f"\nepoll_pwait2 wake-up error on CPU {CLIENT_CPU} (ns): {doc['oversleep']}")
    for r in doc["scale"]:
        print(
            f"{r['connections']:,} connections: {r['connect_s']:.3f} s to establish "
            f"({r['established']:,} ok), RSS per idle connection "
            f"{r['rss_bytes_per_idle_connection']:.0f} B"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short smoke run (1 pair x 1 s)")
    p.add_argument("--out", type=Path, default=None, help="write all numbers as JSON here")
    p.add_argument(
        "--targets", default=",".join(TARGETS),
        help=f"servers to compare against wrk, comma-separated (default {','.join(TARGETS)})",
    )  # fmt: skip
    p.add_argument("--concurrency", type=int, nargs="+", default=None,
                   help="connection levels to compare (default 100)")  # fmt: skip
    p.add_argument("--pairs", type=int, default=None, help="A/B pairs per level (default 3)")
    p.add_argument("--duration", type=float, default=None, help="seconds per run (default 5)")
    p.add_argument(
        "--loadgen-poll-us", type=int, default=None,
        help=f"closed loop: the core polls this long before blocking ({POLL_ENV}; default "
        f"the load generator's, {DEFAULT_POLL_NS // 1000}; 0 blocks at once)",
    )  # fmt: skip
    p.add_argument("--no-lag", action="store_true", help="skip the send-lag part")
    p.add_argument(
        "--lag-cores", default="c", help="loops for the send-lag part: c, python or c,python"
    )
    p.add_argument("--no-scale", action="store_true", help="skip the connection-scale part")
    args = p.parse_args(argv)
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("wrk and taskset are needed: apt-get install wrk util-linux", file=sys.stderr)
        return 1
    if not {SERVER_CPU, CLIENT_CPU} <= os.sched_getaffinity(0):
        print(f"needs CPUs {SERVER_CPU} and {CLIENT_CPU} (server and client)", file=sys.stderr)
        return 1
    if args.loadgen_poll_us is not None:
        os.environ[POLL_ENV] = str(args.loadgen_poll_us * 1000)  # read by the worker process
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        print(f"unknown target(s) {unknown}: choose from {', '.join(TARGETS)}", file=sys.stderr)
        return 1
    lag_cores = [c.strip() for c in args.lag_cores.split(",") if c.strip()]
    if not set(lag_cores) <= {"c", "python"}:
        print(f"--lag-cores {args.lag_cores!r}: use c, python or c,python", file=sys.stderr)
        return 1
    levels, pairs, duration_s, scale = [100], 3, 5.0, [10_000, 19_000]
    lag_s = 5.0
    if args.quick:
        pairs, duration_s, lag_s, scale = 1, 1.0, 1.0, [10_000]
    levels = args.concurrency or levels
    pairs = max(1, args.pairs) if args.pairs is not None else pairs
    duration_s = args.duration if args.duration is not None else duration_s
    scale = [] if args.no_scale else scale
    doc: dict[str, Any] = {"quick": args.quick, "turnaround": {}, "send_lag": [],
                           "oversleep": None, "scale": []}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "done.lua"
        lua.write_text(WRK_DONE_LUA)
        for target in targets:
            reason = skip_reason(target)
            if reason:
                print(f"{target}: skipped, {reason}", file=sys.stderr)
                doc["turnaround"][target] = {"skipped": reason}
                continue
            with _server(target, Path(tmp)) as (pid, port, probe):
                print(f"{target} http server pid {pid} on CPU {SERVER_CPU}, port {port}",
                      file=sys.stderr)  # fmt: skip
                rows = compare(port, levels, pairs, duration_s, lua, probe)
                doc["turnaround"][target] = {"runs": rows, "summary": summarise(rows)}
        if not args.no_lag or scale:
            with _server("epoll", Path(tmp)) as (pid, port, _probe):
                if not args.no_lag:
                    print(f"send lag against epoll (pid {pid}, port {port})", file=sys.stderr)
                    doc["send_lag"] = send_lag(port, lag_cores, lag_s)
                    doc["oversleep"] = oversleep(200 if args.quick else 2000)
                doc["scale"] = connection_scale(port, scale)
    print_tables(doc)
    if args.out:
        args.out.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
