"""No process the harness started outlives it, whatever kills it.

SIGKILL runs no code in the victim, so only the children themselves can notice
(lifeline: a parent-death signal armed race-free). ``bench run`` is killed
alone (not its process group, which is what the OOM killer or a closed session
does) at points chosen by a seeded draw: inside the k-th trial, once its server
or once its load generator runs. Every descendant recorded just before the kill
must be gone 3 s later. The same for a Dask load host: its worker process is
killed while its agent holds connected load workers.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from bench.measure.machine.lock import LOCK_PATH_ENV
from bench.store import schema

REPO = Path(__file__).resolve().parent.parent
MARKER_ENV = "BENCH_TEST_MARKER"
# What a dead parent's children get to die: the kernel sends SIGKILL at once.
GONE_WITHIN_S = 3.0
KILL_POINTS = 3
# The main thread and the two control channels' (servers.cli starts them after READY).
SERVING_THREADS = 3
SEED = 20

pytestmark = pytest.mark.slow


def _marked(marker: str) -> list[psutil.Process]:
    """Every live process that inherited the marker (reparented orphans included)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARKER_ENV) == marker and proc.status() != "zombie":
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def _survivors(procs: list[psutil.Process]) -> list[str]:
    """Those still running after GONE_WITHIN_S (a zombie is dead), each killed by its PID."""
    _, alive = psutil.wait_procs(procs, timeout=GONE_WITHIN_S)
    left = []
    for proc in alive:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            left.append(f"{proc.pid} {_cmdline(proc)[:120]}")
            proc.kill()
        except psutil.Error:
            continue
    return left


def _trials_done(out: Path) -> int:
    for run in out.iterdir():
        try:
            return int(json.loads((run / schema.RUN_JSON).read_text()).get("cells_done", 0))
        except (OSError, ValueError):
            continue
    return 0


def _serving(proc: psutil.Process) -> bool:
    """Past start-up: a server runs its control threads only once READY is written (killed
    before that, it would die of the closed pipe, not of the lifeline)."""
    try:
        return "-m servers" not in _cmdline(proc) or proc.num_threads() >= SERVING_THREADS
    except psutil.Error:
        return False


def _wait_for(
    bench: subprocess.Popen[str], marker: str, out: Path, trial: int, phase: str
) -> list[psutil.Process]:
    """Bench's descendants once trial ``trial`` (0-based) runs a process of ``phase``."""
    want = "-m servers" if phase == "server" else "loadgen.worker_entry"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if bench.poll() is not None:
            pytest.fail(f"bench run ended (status {bench.returncode}) before trial {trial}")
        if _trials_done(out) >= trial:
            marked = [p for p in _marked(marker) if p.pid != bench.pid]
            if any(want in _cmdline(p) and _serving(p) for p in marked):
                try:
                    tree = psutil.Process(bench.pid).children(recursive=True)
                except psutil.Error:
                    tree = []
                return list({p.pid: p for p in [*marked, *tree]}.values())
        time.sleep(0.01)
    pytest.fail(f"no {phase} process of trial {trial} appeared within 120 s")


@pytest.fixture
def marker() -> Iterator[str]:
    value = uuid.uuid4().hex
    yield value
    for proc in _marked(value):  # whatever a failed test left: ended by its PID
        proc.kill()


def test_sigkill_of_bench_run_leaves_no_process_behind(tmp_path: Path, marker: str) -> None:
    rng = random.Random(SEED)
    points = [(rng.randrange(3), rng.choice(("server", "load"))) for _ in range(KILL_POINTS)]
    for attempt, (trial, phase) in enumerate(points):
        out = tmp_path / f"try{attempt}"
        out.mkdir()
        env = dict(os.environ, **{MARKER_ENV: marker, LOCK_PATH_ENV: str(tmp_path / "lock")})
        argv = ["run", "--preset", "tiny", "--no-charts", "--out", str(out)]
        argv += ["--scenario", "idle-scaling"]
        bench = subprocess.Popen(
            [sys.executable, "-m", "bench", *argv],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            children = _wait_for(bench, marker, out, trial, phase)
            names = " | ".join(_cmdline(p) for p in children)
            os.kill(bench.pid, signal.SIGKILL)  # bench alone, never its group
            bench.wait()
        finally:
            if bench.poll() is None:
                bench.kill()
                bench.wait()
        want = "-m servers" if phase == "server" else "loadgen.worker_entry"
        assert want in names, names
        left = _survivors(children)
        assert left == [], f"try {attempt} (trial {trial}, {phase}): orphans {left}"


# A parent that starts one server and prints its PIDs (the server and the processes
# it runs the work in, e.g. haproxy under its wrapper), then waits to be killed.
PARENT = """
import json, sys, time
from servers.config import ServerConfig
from servers.launch import start_server
server = start_server(ServerConfig(backend=sys.argv[1]))
print(json.dumps([server.pid, *server.ready_info.get("worker_pids", [])]), flush=True)
time.sleep(600)  # window: the test kills this process long before
"""


@pytest.mark.parametrize("backend", ["epoll", "c-epoll", "haproxy-epoll"])
def test_every_kind_of_server_dies_with_the_process_that_started_it(backend: str) -> None:
    from servers import registry

    reason = registry.get(backend).unavailable_reason()
    if reason:
        pytest.skip(reason)
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, backend],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()  # the event: the server answered READY
        if not line:
            pytest.fail(f"the parent ended before its server was up: {parent.communicate()[1]}")
        pids = json.loads(line)
        servers = [psutil.Process(pid) for pid in pids]
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    assert _survivors(servers) == []


def test_a_load_hosts_children_die_with_its_dask_worker(tmp_path: Path) -> None:
    pytest.importorskip("distributed", reason="pip install -e '.[cluster]'")
    from distributed import Client
    from fixtures.dask_hosts import LoopbackCluster

    from bench.measure.placement.agents import LoadAgent
    from loadgen.config import LoadConfig
    from loadgen.plan import plan_workers
    from servers.config import ServerConfig
    from servers.launch import start_server

    cluster = LoopbackCluster(tmp_path / "dask")
    try:
        worker = cluster.worker("ld", "load=1")
        with (
            start_server(ServerConfig(backend="epoll")) as server,
            Client(cluster.address) as client,
        ):
            address = next(
                a for a, w in client.scheduler_info()["workers"].items() if w["name"] == "ld"
            )
            agent = client.submit(LoadAgent, actor=True, workers=[address], pure=False).result(60)
            cfg = LoadConfig(port=server.port, idle_connections=20, active_connections=4)
            agent.prepare(cfg, plan_workers(cfg, "127.0.0.1", True), 30.0).result(60)
            # prepare returned: the agent's leash and connected load workers are running.
            children = psutil.Process(worker.pid).children(recursive=True)
            names = " | ".join(_cmdline(p) for p in children)
            cluster.procs.kill("ld")
            assert "loadgen.worker_entry" in names and "bench.measure.placement.leash" in names, (
                names
            )
            assert _survivors(children) == []
    finally:
        cluster.close()
