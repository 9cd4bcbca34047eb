"""churn through wrk: the fallback when the load generator lacks churn mode.

The server runs with ``--http-close`` (what the seed's epoll server did): it
answers ``Connection: close`` and closes, so each request costs the server an
accept, a register, an unregister and a close. The runner drives churn with
the project's own load generator (``LoadConfig.new_connection_per_request``)
whenever it has that mode; this module, which drives wrk (it reconnects
natively), is only used with a load generator that does not.

wrk's result is not scraped from its human output: a Lua ``done()`` hook
writes one JSON document to a file (pyperf's rule: structured channels only).
wrk has no callbacks at the measured window's edges, so the caller reads the
server's counters at ``warmup_s`` and ``warmup_s + measure_s`` after wrk
starts; throughput and server CPU come from those counters, wrk's latency
percentiles cover its whole run (warm-up included) and are labelled so.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from bench.wrk import WRK_DONE_LUA, WRK_JSON_ENV


def _cpu_s(proc: psutil.Process) -> float | None:
    try:
        cpu = proc.cpu_times()
    except psutil.Error:
        return None
    return cpu.user + cpu.system


class WrkMissingError(RuntimeError):
    """wrk is not installed; churn cannot be measured."""


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissingError(
            "churn needs wrk (it reconnects for every request): `apt-get install wrk`, "
            "or leave churn out with --scenario"
        )
    return path


def run_wrk_churn(
    host: str,
    port: int,
    connections: int,
    warmup_s: float,
    measure_s: float,
    cpus: tuple[int, ...],
    on_measure_start: Callable[[], None],
    on_measure_end: Callable[[], None],
) -> dict[str, Any]:
    """Run wrk with ``connections`` reconnecting connections; call back at the window's edges."""
    wrk = wrk_path()
    # wrk takes whole seconds: give it a generous -d and stop it with SIGINT right
    # after the window (wrk then stops its threads and still runs done()).
    duration_s = max(2, math.ceil(warmup_s + measure_s + 2.0))
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "done.lua"
        script.write_text(WRK_DONE_LUA)
        out = Path(tmp) / "result.json"
        env = {**os.environ, WRK_JSON_ENV: str(out)}
        argv = [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{duration_s}s",
            "-s",
            str(script),
            f"http://{host}:{port}/",
        ]
        cpu_set = set(cpus)

        def pin() -> None:
            if cpu_set:
                os.sched_setaffinity(0, cpu_set)

        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            preexec_fn=pin,
        )
        client = psutil.Process(proc.pid)
        try:
            started = time.monotonic()
            time.sleep(warmup_s)
            on_measure_start()
            cpu0, t0 = _cpu_s(client), time.monotonic()
            time.sleep(max(0.0, started + warmup_s + measure_s - time.monotonic()))
            on_measure_end()
            cpu1, t1 = _cpu_s(client), time.monotonic()
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=duration_s + 10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if proc.returncode != 0 or not out.is_file():
            tail = stderr.decode(errors="replace")[-300:]
            raise RuntimeError(f"wrk exited with status {proc.returncode}: {tail}")
        result = json.loads(out.read_text())
    result["tool"] = "wrk"
    busy = (cpu1 - cpu0) / (t1 - t0) if cpu0 is not None and cpu1 is not None else None
    result["client_cpu_s_window"] = (cpu1 - cpu0) if busy is not None else None
    result["client_busy_share"] = busy
    # locust's rule: a client busy >= 90% of the window may be the bottleneck.
    result["saturated"] = bool(busy is not None and busy >= 0.9)
    result["wrk_duration_s"] = result.get("duration_us", 0) / 1e6
    result["wrk_stdout"] = stdout.decode(errors="replace")
    result["latency_window"] = "whole wrk run (warm-up included)"
    return result
