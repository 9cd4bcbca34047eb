"""bench measures HAProxy like the other servers (issue 10, item 4): its CPU time is the
wrapper's plus haproxy's (READY's worker_pids), a tiny active-scaling run beside the Python
epoll server gives ok rows, and the fd-limit probe shows haproxy-select's maxconn."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_servers_support import HttpClient, assert_hello, http_request

from bench.measure.placement import LocalServer, schedstat_cpu_ns
from bench.store.results import load
from servers.config import ServerConfig
from servers.haproxy_config import INSTALL_HINT, SELECT_MAXCONN, find_haproxy
from servers.launch import start_server

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(
    find_haproxy() is None, reason=f"haproxy is not installed: {INSTALL_HINT}"
)


def test_server_cpu_is_the_wrapper_plus_haproxy() -> None:
    with start_server(ServerConfig(backend="haproxy-epoll")) as process:
        server = LocalServer(process)
        (haproxy_pid,) = server.ready_info["worker_pids"]
        start = server.edge()
        haproxy_start = schedstat_cpu_ns(haproxy_pid)
        with HttpClient(server.port) as client:
            for _ in range(2000):
                client.send(http_request())
                assert_hello(client.read_response())
        haproxy_end = schedstat_cpu_ns(haproxy_pid)
        end = server.edge()
    assert start.process is not None and end.process is not None, end.process_error
    assert start.process.cpu_ns_schedstat is not None and end.process.cpu_ns_schedstat is not None
    assert haproxy_start is not None and haproxy_end is not None
    haproxy_ns = haproxy_end - haproxy_start
    assert haproxy_ns > 0
    # Summed over both processes: at least haproxy's own share of the window.
    assert end.process.cpu_ns_schedstat - start.process.cpu_ns_schedstat >= haproxy_ns
    assert end.process.num_fds > 0 and end.stats is not None
    assert start.stats is not None and start.stats.delta(end.stats).requests == 2000


def _bench_run(tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "results"
    proc = subprocess.run(
        # No charts or report: these tests read the trial table only.
        [
            sys.executable,
            "-m",
            "bench",
            "run",
            "--preset",
            "tiny",
            "--out",
            str(out),
            "--no-charts",
            *args,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


@pytest.mark.slow
def test_tiny_active_scaling_beside_python_epoll(tmp_path: Path) -> None:
    run = _bench_run(tmp_path, "--backend", "haproxy-epoll,epoll", "--scenario", "active-scaling")
    trials = load(run).trials
    assert set(trials["backend"]) == {"haproxy-epoll", "epoll"}
    assert (trials["status"] == "ok").all(), trials[["backend", "failure_reason"]]
    assert (trials["requests"] > 0).all()
    haproxy = trials[trials["backend"] == "haproxy-epoll"]
    assert (haproxy["server_cpu_us_per_req"] > 0).all(), haproxy["server_cpu_us_per_req"]
    assert haproxy["server_wait_calls"].isna().all()  # HAProxy does not time its wait call


@pytest.mark.slow
def test_fd_limit_probe_shows_haproxy_select_holding_maxconn(tmp_path: Path) -> None:
    run = _bench_run(tmp_path, "--backend", "haproxy-select", "--scenario", "fd-limit")
    (row,) = load(run).trials.itertuples()
    assert row.status == "ok", row.failure_reason
    assert row.connections_served == SELECT_MAXCONN
    seen = json.loads(row.client_observation)
    # The rest connected (the kernel's backlog) and waited: no refusal, no reset.
    assert seen == {"ok": SELECT_MAXCONN, "timeout": row.connections_requested - SELECT_MAXCONN}
