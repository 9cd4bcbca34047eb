"""``bench run --cluster`` end to end across network namespaces (root only).

Five namespaces are hosts on one bridge (the bridge in a sixth), addressed in
198.18.0.0/15: ``ctl`` runs the Dask scheduler and bench itself, ``srv`` a
worker with resource server=1, ``ld1``..``ld3`` workers with load=1. Traffic
never leaves them. The tiny preset runs with the server in ``srv`` and load
from two load hosts; then a third load host joins and one server holds 19,000
connections, more than one host's load generator could (a process holds at
most ~19,990 descriptors here). After each run no process but the Dask
daemons is left in any namespace; at the end none at all, and the namespaces
are gone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.dask_hosts import NetnsHosts, netns_unavailable
from fixtures.machine_share import machine_alone

from bench.store import schema
from bench.store.results import load

pytestmark = pytest.mark.slow
pytest.importorskip(
    "distributed", reason="Dask distributed is not installed: pip install -e '.[cluster]'"
)

REPO = Path(__file__).resolve().parent.parent
PLUGIN_DIR = Path(__file__).resolve().parent / "plugins"
# Connections the clients hold that the server may not have accepted yet (see below).
ACCEPT_LAG_MAX = 16
HOSTS = ("ctl", "srv", "ld1", "ld2", "ld3")


class Net:
    def __init__(self, hosts: NetnsHosts) -> None:
        self.hosts = hosts
        self.scheduler = hosts.scheduler("ctl")
        self.workers = 0

    def worker(self, host: str, resources: str) -> None:
        self.hosts.worker(host, self.scheduler, resources)
        self.workers += 1
        self.hosts.wait_for_workers("ctl", self.scheduler, self.workers)

    def daemons(self) -> set[int]:
        return {p.pid for p in self.hosts.procs.procs.values()}

    def bench(self, args: list[str], out: Path, env: dict[str, str] | None = None) -> Path:
        argv = [sys.executable, "-m", "bench", *args, "--out", str(out)]
        argv += ["--cluster", self.scheduler, "--allow-remote", self.hosts.address("srv")]
        done = subprocess.run(
            self.hosts.argv("ctl", argv),
            capture_output=True,
            text=True,
            timeout=600,
            cwd=REPO,
            env=env,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
        runs = [p for p in out.iterdir() if (p / schema.RUN_JSON).is_file()]
        assert len(runs) == 1, runs
        return runs[0]

    def assert_only_daemons_left(self) -> None:
        running = {pid for pids in self.hosts.pids().values() for pid in pids}
        assert running <= self.daemons(), f"left behind: {running - self.daemons()}"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(reason)
    hosts = NetnsHosts(HOSTS, tmp_path_factory.mktemp("netns"))
    names = list(hosts.made)
    left: dict[str, list[int]] = {}
    try:
        n = Net(hosts)
        n.worker("srv", "server=1")
        n.worker("ld1", "load=1")
        n.worker("ld2", "load=1")
        yield n
    finally:
        left = hosts.close()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [ns for ns in names if ns in listed.split()], listed
    assert not left, f"processes left in the namespaces: {left}"


@pytest.fixture(scope="module")
def third_load_host(net: Net) -> Net:
    """ld3 joins (module scope: the worker is ended with the others, not by this test)."""
    net.worker("ld3", "load=1")
    return net


def _hosts(meta: dict[str, object], role: str) -> list[str]:
    placement = meta["placement"]
    assert isinstance(placement, dict)
    return sorted(h["address"] for h in placement["hosts"] if h["role"] == role)


def test_tiny_preset_with_the_server_in_one_namespace_and_load_from_two(
    net: Net, tmp_path: Path
) -> None:
    # No charts or report: they are drawn from the run folder alone, wherever it was
    # measured (tests/test_bench_e2e.py redraws a local run's; the hold-19000 test below
    # writes this placement's verdict and report).
    run = net.bench(["run", "--preset", "tiny", "--no-charts"], tmp_path)
    addr = net.hosts.address
    # The same tables as a local run (tests/test_bench_e2e.py checks the local one).
    for name in (schema.RUN_JSON, schema.TRIALS_CSV, schema.TRIALS_PARQUET, schema.MICRO_CSV):
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    data = load(run)
    assert data.meta["status"] == "complete" and data.meta["cells_done"] == len(data.trials)
    assert set(data.trials["status"]) == {"ok"}, data.trials["failure_reason"].tolist()
    # The run names its hosts, and every trial's server ran in srv, its load from ld1 and ld2.
    assert _hosts(data.meta, "server") == [addr("srv")]
    assert _hosts(data.meta, "load") == [addr("ld1"), addr("ld2")]
    loaded = [r for r in data.trials["raw_file"] if "fd-limit" not in r]
    for rel in loaded:
        raw = json.loads((run / rel).read_text())
        assert raw["server_ready_info"]["placement_host"].endswith(f"({addr('srv')})")
        placement = raw["loadgen"]["placement"]
        assert [h["host"].split("(")[-1] for h in placement["hosts"]] in (
            [f"{addr('ld1')})", f"{addr('ld2')})"],
            [f"{addr('ld1')})"],  # a trial of one active connection uses one host
        )
        # The server's reads bracket the window, or the trial says they did not (a read
        # made late by scheduling on this shared 2-CPU machine is flagged, not hidden).
        row = data.trials[data.trials["raw_file"] == rel].iloc[0]
        assert placement["server_edges"]["bracketed"] or "edges_not_bracketing_window" in str(
            row["flag_reasons"]
        ), placement
    net.assert_only_daemons_left()


def test_three_load_hosts_hold_19000_connections_on_one_server(
    third_load_host: Net, tmp_path: Path
) -> None:
    net = third_load_host
    env = dict(os.environ)
    env["SELECTBENCH_PLUGINS"] = "cluster_hold"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PLUGIN_DIR), env.get("PYTHONPATH")) if p)
    args = ["run", "--preset", "tiny", "--scenario", "hold-19000", "--backend", "epoll"]
    with machine_alone():  # 19,000 handshakes from three hosts: a load of its own
        run = net.bench([*args, "--force"], tmp_path, env)
    data = load(run)
    row = data.trials.iloc[0]
    assert row["status"] == "ok", row["failure_reason"]
    assert row["connections_established"] == 19_000
    # The server's count at the window's end may lag the clients' by handshakes the
    # kernel completed and the server has not accepted yet: 18,998 and 18,999 in 4 of
    # 17 runs of the suite on 2026-12-06 (the tiny preset warms up for 0.05 s).
    held = 19_000 - ACCEPT_LAG_MAX
    assert row["server_connections_end"] >= held and row["connections_served"] >= held
    raw = json.loads((run / row["raw_file"]).read_text())
    hosts = raw["loadgen"]["placement"]["hosts"]
    assert len(hosts) == 3 and sum(h["connections"] for h in hosts) == 19_000
    assert max(h["connections"] for h in hosts) < 19_990  # what one host could not hold
    # The verdict and report come out as for a local run of this one scenario (no chart
    # reads its rows, there or here).
    assert (run / schema.VERDICT_JSON).is_file() and (run / schema.REPORT_MD).is_file()
    net.assert_only_daemons_left()
