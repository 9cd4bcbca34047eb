"""c-uring, the io_uring completion server (issue 18, items 2 and 6), where it cannot run:
io_uring refused as a whole (servers.uring_availability: the kernel switch, a seccomp
filter, a build without liburing) or a kernel without what only the completion server needs
(a provided-buffer ring, multishot receive). The backend is then unavailable with the cause
and the remedy: the registry says so, the server command and bench refuse with it (status
2, no traceback), and bench doctor names c-uring alone as skipped while the other C
backends run. Its mechanism's name is declared once in servers/ and agrees with the
extension's and the analysis's."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_c_support import C_BACKENDS  # noqa: F401 -- registers the C backends
from test_uring_poll import refuse_io_uring_setup

from bench.analyse.rules.uring import URING_COMPLETION_MECHANISM
from bench.measure.machine import doctor
from servers import c_uring, registry, uring_availability

REPO = Path(__file__).resolve().parents[1]


def test_each_probe_stage_names_its_cause_and_remedy() -> None:
    describe = c_uring.describe_stage
    buf_ring = describe("buf_ring", errno.EINVAL)
    assert "EINVAL" in buf_ring and "Linux 5.19" in buf_ring
    multishot = describe("multishot_recv", errno.EINVAL)
    assert "EINVAL" in multishot and "Linux 6.0" in multishot
    assert "no error, wrong result" in describe("multishot_recv", 0)
    setup = describe("setup", errno.ENOMEM)
    assert "ENOMEM" in setup and "ulimit -l" in setup
    assert "'elsewhere'" in describe("elsewhere", errno.EIO)


def test_the_mechanism_is_named_alike_in_servers_the_extension_and_the_analysis() -> None:
    assert registry.get("c-uring").mechanism == c_uring.URING_COMPLETION
    assert registry.get("c-uring").family == registry.FAMILY_C
    assert URING_COMPLETION_MECHANISM == c_uring.URING_COMPLETION
    c_server = pytest.importorskip("servers.c_server", reason="the C extension is not built")
    assert c_server.load_extension().URING_COMPLETION == c_uring.URING_COMPLETION


def _refused(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``python -m <args>`` where io_uring_setup fails with EPERM (a seccomp filter)."""
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, preexec_fn=refuse_io_uring_setup(errno.EPERM),
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip


@pytest.mark.slow  # about a second: the full suite runs it, the fast tier does not
def test_a_refused_io_uring_setup_makes_the_server_and_bench_refuse_c_uring(tmp_path) -> None:
    serve = _refused(["servers", "--backend", "c-uring"], tmp_path)
    assert serve.returncode == 2, serve.stdout + serve.stderr
    assert "io_uring_setup fails with EPERM" in serve.stderr and "seccomp" in serve.stderr
    assert "Traceback" not in serve.stderr and "READY" not in serve.stdout
    out = tmp_path / "results"
    run = _refused(["bench", "run", "--preset", "tiny", "--backend", "c-uring", "--out", str(out)],
                   tmp_path)  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr
    assert "backend c-uring:" in run.stderr and "io_uring_setup fails with EPERM" in run.stderr
    assert "Traceback" not in run.stderr
    assert not out.exists() or not any(out.iterdir()), "nothing may be measured or written"


@pytest.fixture
def kernel_without_multishot_receive(monkeypatch):
    """io_uring works (the readiness backends run) but multishot receive does not, as on
    Linux 5.19: only c-uring's own probe fails."""
    if (reason := uring_availability.unavailable_reason()) is not None:
        pytest.skip(reason)
    from servers.c_server import load_extension

    failure = ("multishot_recv", errno.EINVAL)
    monkeypatch.setattr(load_extension(), "uring_completion_probe", lambda: failure)
    c_uring.unavailable_reason.cache_clear()
    yield
    c_uring.unavailable_reason.cache_clear()


@pytest.mark.usefixtures("kernel_without_multishot_receive")
def test_doctor_skips_c_uring_alone_and_says_why() -> None:
    reason = registry.get("c-uring").unavailable_reason()
    assert reason is not None and "Linux 6.0" in reason
    assert registry.get("c-epoll").unavailable_reason() is None
    assert registry.get("c-uring-poll").unavailable_reason() is None
    check = doctor._c_twins()
    assert not check.ok and check.value != "unavailable", check
    running, skipped = check.value.split("; skipped ")
    assert {"c-epoll", "c-uring-poll"} <= set(running.split(", ")), check.value
    assert "c-uring" not in running.split(", "), check.value
    assert skipped == "c-uring", check.value
    assert check.remedy.startswith("c-uring skipped:") and "Linux 6.0" in check.remedy


@pytest.mark.parametrize("preset", ["quick", "standard", "tiny", "full"])
def test_quick_plans_c_uring_for_the_io_uring_question_and_full_everywhere(preset: str) -> None:
    """Declared edge-triggered, so the level-triggered C roles leave it out; quick measures
    it (with c-uring-poll and c-epoll-et) in the io_uring question's idle-heavy cell only,
    full beside the C family everywhere, standard and tiny not at all."""
    from bench.measure.config import build_config
    from bench.measure.plan import plan_trials
    from bench.measure.scenarios import idle_scaling

    if preset in ("quick", "full") and (reason := registry.get("c-uring").unavailable_reason()):
        pytest.skip(reason)
    assert registry.get("c-uring").edge_triggered
    trials = plan_trials(build_config(preset=preset, order_seed=1))
    mine = [t for t in trials if t.backend == "c-uring"]
    assert bool(mine) == (preset in ("quick", "full")), sorted({t.backend for t in trials})
    if preset == "quick":
        cells = {(t.scenario, t.mode, t.idle_connections) for t in mine}
        assert cells == {(idle_scaling.NAME, "open", idle_scaling.IDLE_HEAVY_COUNT)}
        beside = {t.backend for t in trials if (t.scenario, t.mode, t.idle_connections) in cells}
        assert {"c-epoll", "c-epoll-et", "c-uring-poll", "c-uring"} <= beside
