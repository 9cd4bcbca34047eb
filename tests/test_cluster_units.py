"""The pieces of a cluster run that need no cluster: clock offsets, the load split, the leash,
and that a run on this host never imports Dask."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench.commands import build_parser
from bench.measure.placement import clock as clock_module
from bench.measure.placement.clock import measure_offset
from bench.measure.placement.leash import Leash
from bench.measure.placement.load_split import split_load
from loadgen import LoadConfig

REPO = Path(__file__).resolve().parent.parent


class _ScriptedClock:
    """A monotonic and a wall clock that move only when the test says so."""

    wall_minus_mono_ns = 1_700_000_000_000_000_000

    def __init__(self) -> None:
        self.mono_ns = 1_000_000_000

    def advance(self, seconds: float) -> None:
        self.mono_ns += round(seconds * 1e9)

    def monotonic_ns(self) -> int:
        return self.mono_ns

    def time_ns(self) -> int:
        return self.mono_ns + self.wall_minus_mono_ns


def test_the_offset_lies_within_its_bound_whatever_the_delays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock_now = _ScriptedClock()
    monkeypatch.setattr(clock_module, "time", clock_now)
    true_offset_ns = 5_000_000_000  # the host's clocks are 5 s ahead of ours
    there = iter([0.004, 0.0001, 0.002, 0.0003] * 4)  # asymmetric, varying
    back_s = 0.0005

    def ask() -> tuple[int, int]:
        clock_now.advance(next(there))
        now_mono, now_wall = clock_now.monotonic_ns(), clock_now.time_ns()
        clock_now.advance(back_s)
        return now_mono + true_offset_ns, now_wall + true_offset_ns

    clock = measure_offset(ask, rounds=8)
    assert abs(clock.offset_mono_s - 5.0) <= clock.uncertainty_s
    assert abs(clock.offset_wall_s - 5.0) <= clock.uncertainty_s
    assert clock.uncertainty_s == pytest.approx(clock.rtt_s / 2)
    # The best round trip (0.1 ms there, 0.5 ms back) sets the bound, not the worst;
    # the round trips were 4.5, 0.6, 2.5, 0.8 ms, twice each.
    assert clock.rtt_s == pytest.approx(0.0006, abs=1e-9)
    assert clock.rtt_median_s == pytest.approx((0.0008 + 0.0025) / 2, abs=1e-9)
    # That round's host reading came 0.1 ms after ours started: offset 5 s - 0.2 ms.
    assert clock.offset_mono_s == pytest.approx(5.0 - 0.0002, abs=1e-9)
    assert clock.to_host_ns(1_000) == 1_000 + round(clock.offset_mono_s * 1e9)


def test_the_load_is_split_over_hosts_as_one_load_generator_would_run_it() -> None:
    cfg = LoadConfig(
        host="198.18.0.2",
        port=8080,
        idle_connections=18_992,
        active_connections=8,
        mode="open",
        rate_rps=1000.0,
        allow_remote=True,
    )
    split = split_load(cfg, [2, 2, 1], "198.18.0.2", is_loopback=False)
    plans = [p for host in split.plans for p in host]
    assert [len(h) for h in split.plans] == [2, 2, 1]
    assert split.config.workers == split.workers == 5 and split.config.cpus is None
    # Global numbering: workers, connections and active connections follow on across hosts.
    assert [p.index for p in plans] == list(range(5))
    starts = [p.first_connection_index for p in plans]
    assert starts == [0, *(sum(q.idle + q.active for q in plans[:i]) for i in range(1, 5))]
    actives = [p.first_active_index for p in plans]
    assert actives == [0, *(sum(q.active for q in plans[:i]) for i in range(1, 5))]
    assert sum(p.idle for p in plans) == 18_992 and sum(p.active for p in plans) == 8
    per_host = [sum(p.idle + p.active for p in h) for h in split.plans]
    assert max(per_host) - min(per_host) <= 1
    assert sum(p.rate_rps or 0 for p in plans) == pytest.approx(1000.0)
    assert all(p.sources == () for p in plans)  # one remote host: the kernel picks ports


def test_a_host_with_no_share_gets_no_workers() -> None:
    cfg = LoadConfig(port=8080, idle_connections=0, active_connections=2)
    split = split_load(cfg, [4, 4, 4], "127.0.0.1", is_loopback=True)
    assert [len(h) for h in split.plans] == [1, 1, 0]
    assert split.config.workers == 2


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_the_leash_ends_what_is_still_registered_when_its_pipe_closes() -> None:
    """The sleepers are this test's children: ended, they stay zombies until it reaps them,
    and the leash must count that as ended (not wait out its SIGTERM grace)."""
    kept, dropped = _sleeper(), _sleeper()
    leash = Leash()
    try:
        leash.add(kept.pid, dropped.pid)
        leash.drop(dropped.pid)
        leash.close()
        assert kept.wait(10) != 0  # ended by the leash
        assert dropped.poll() is None  # released: not the leash's any more
    finally:
        for proc in (kept, dropped):
            proc.kill()
            proc.wait()


@pytest.mark.slow  # waits for a killed agent's leash: seconds
def test_the_leash_outlives_a_killed_agent_and_ends_its_processes(tmp_path: Path) -> None:
    """The agent's process dies (SIGKILL-like os._exit) with a server-like child running."""
    code = (
        "import os, subprocess, sys\n"
        "from bench.measure.placement.leash import Leash\n"
        "leash = Leash()\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "leash.add(child.pid)\n"  # flushed into the pipe: read before its end of file
        "print(child.pid, leash.pid, flush=True)\n"
        "os._exit(0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    child, leash = (int(x) for x in out.stdout.split())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(map(psutil.pid_exists, (child, leash))):
        time.sleep(0.05)
    assert not psutil.pid_exists(child) and not psutil.pid_exists(leash)


def test_a_run_on_this_host_never_imports_dask(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from bench.commands import main\n"
        f"code = main(['run', '--preset', 'tiny', '--dry-run', '--out', {str(tmp_path)!r}])\n"
        "import bench.measure.placement, bench.measure.run, bench.commands.doctor\n"
        "assert code == 0, code\n"
        "assert 'distributed' not in sys.modules and 'dask' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow  # about a second: the full suite runs it, the fast tier does not
def test_the_cluster_guide_commands_parse() -> None:
    """docs/cluster.md's bench commands parse, and its dask commands use real options."""
    lines = (REPO / "docs" / "cluster.md").read_text().splitlines()
    bench = [shlex.split(line)[3:] for line in lines if line.startswith("python -m bench ")]
    assert any("--cluster" in argv for argv in bench)
    parser = build_parser()
    for argv in bench:
        parser.parse_args(argv)
    if importlib.util.find_spec("distributed") is None:
        pytest.skip("Dask distributed is not installed: pip install -e '.[cluster]'")
    for kind in ("scheduler", "worker"):
        used = {
            opt
            for line in lines
            if line.startswith(f"dask {kind} ")
            for opt in re.findall(r"--[a-z-]+", line)
        }
        assert used, kind
        help_text = subprocess.run(
            [sys.executable, "-m", f"distributed.cli.dask_{kind}", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        assert not [opt for opt in used if opt not in help_text], kind


class _PendingFuture:
    """An actor call that never answers: each wait ends in its timeout at once."""

    def __init__(self, answer_after: int | None = None) -> None:
        self.waits = 0
        self.answer_after = answer_after

    def result(self, timeout: float) -> str:
        self.waits += 1
        if self.answer_after is not None and self.waits > self.answer_after:
            return "answer"
        raise TimeoutError


class _Scheduler:
    """The scheduler's worker list, with the host's worker leaving after ``leaves_after``."""

    def __init__(self, worker: str, leaves_after: int) -> None:
        self.worker, self.leaves_after, self.asked = worker, leaves_after, 0

    def scheduler_info(self, n_workers: int = -1) -> dict[str, dict[str, dict[str, str]]]:
        self.asked += 1
        gone = self.asked > self.leaves_after
        return {"workers": {} if gone else {self.worker: {"name": "srv"}}}


def _cluster_with(scheduler: _Scheduler) -> tuple[object, object]:
    from bench.measure.placement.cluster import Cluster, Host

    cluster = Cluster.__new__(Cluster)  # no Dask: only the client's worker list is used
    cluster.client = scheduler
    cluster.hosts = []
    return cluster, Host("server", scheduler.worker, "srv", "127.0.0.1")


def test_a_call_to_a_host_whose_worker_left_fails_at_once_as_host_lost() -> None:
    from bench.measure.placement.cluster import HostLost

    scheduler = _Scheduler("tcp://127.0.0.1:1", leaves_after=2)
    cluster, host = _cluster_with(scheduler)
    future = _PendingFuture()
    with pytest.raises(HostLost, match="left the Dask cluster"):
        cluster.wait(host, future, timeout_s=3600.0)
    assert future.waits == 3 and scheduler.asked == 3  # two slices with it there, then gone
    assert host.lost and "disappeared" in host.lost


def test_a_call_answered_after_some_slices_returns_its_answer() -> None:
    scheduler = _Scheduler("tcp://127.0.0.1:1", leaves_after=10**6)
    cluster, host = _cluster_with(scheduler)
    assert cluster.wait(host, _PendingFuture(answer_after=2), timeout_s=3600.0) == "answer"
    assert host.lost is None


def test_a_call_past_its_timeout_on_a_present_worker_times_out() -> None:
    scheduler = _Scheduler("tcp://127.0.0.1:1", leaves_after=10**6)
    cluster, host = _cluster_with(scheduler)
    with pytest.raises(TimeoutError):
        cluster.wait(host, _PendingFuture(), timeout_s=0.0)
    assert host.lost is None
