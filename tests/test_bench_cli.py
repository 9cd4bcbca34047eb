"""bench's command line: bad requests fail before anything starts, with the cause and remedy."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from bench.measure.config import ConfigError, build_config, preset_config
from bench.measure.plan import estimate_plan, max_client_connections, plan_trials, server_nofile

REPO = Path(__file__).resolve().parent.parent


def bench(
    *args: str, limit_nofile: int | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    def lower_limit() -> None:
        if limit_nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit_nofile, limit_nofile))

    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lower_limit if limit_nofile is not None else None,
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("run", "--preset", "enormous"), "unknown preset 'enormous'"),
        (("run", "--scenario", "idle-scaling,warp-speed"), "unknown scenario warp-speed"),
        (("run", "--backend", "kqueue"), "unknown backend kqueue"),
        (("run", "--repetitions", "0"), "--repetitions must be at least 1"),
        (("run", "--server-cpu", "999"), "server CPU 999 is not available"),
        (("run", "--budget-s", "5"), "exceeds the quick budget of 5 s"),
        (("frobnicate",), "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_requests_are_refused_before_anything_starts(
    args: tuple[str, ...], expected: str, tmp_path: Path
) -> None:
    proc = bench(*args, "--out", str(tmp_path)) if args[0] == "run" else bench(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert expected in proc.stderr
    assert not any(tmp_path.iterdir()), "a refused run must not create a run folder"


def test_no_command_prints_help() -> None:
    proc = bench()
    assert proc.returncode == 2
    assert "run" in proc.stdout and "doctor" in proc.stdout


@pytest.mark.slow  # about a second each: the full suite runs it, the fast tier does not
@pytest.mark.parametrize("command", [("report", "nope"), ("plot", "nope"), ("compare", "a", "b")])
def test_unknown_run_is_a_clear_error(command: tuple[str, ...], tmp_path: Path) -> None:
    proc = bench(*command, "--results-dir", str(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no run" in proc.stderr and "bench run" in proc.stderr


def test_limits_too_low_for_the_sweep_are_refused_with_the_remedy(tmp_path: Path) -> None:
    proc = bench("run", "--dry-run", "--out", str(tmp_path), limit_nofile=1024)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "RLIMIT_NOFILE" in proc.stderr and "ulimit -n" in proc.stderr


def test_quick_plan_is_printed_and_fits_its_budget() -> None:
    proc = bench("run", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "planned duration" in proc.stdout and "budget 180 s" in proc.stdout


def test_repetitions_are_interleaved_across_backends() -> None:
    cfg = build_config("quick", scenarios=("idle-scaling",), backends=("select", "poll", "epoll"))
    trials = plan_trials(cfg.replace(order_seed=3))
    assert [t.order_index for t in trials] == list(range(len(trials)))
    first_cell = [t for t in trials if t.cell == trials[0].cell]
    # Every backend once per repetition (in a seeded random order), repetitions in turn.
    for rep in range(cfg.repetitions):
        assert sorted(t.backend for t in first_cell if t.repetition == rep) == [
            "epoll",
            "poll",
            "select",
        ]
    # Each repetition holds every cell before the next one starts.
    reps = [t.repetition for t in trials]
    assert reps == sorted(reps)


@pytest.mark.slow  # about a second: the full suite runs it, the fast tier does not
def test_dry_run_prints_the_order_seed_and_repeats_an_order_from_it() -> None:
    args = ("run", "--dry-run", "--scenario", "idle-scaling", "--order-seed", "42")
    first, second = bench(*args), bench(*args)
    assert first.returncode == 0, first.stderr
    assert "order seed 42" in first.stdout
    assert first.stdout == second.stdout


def test_select_is_planned_only_where_it_can_hold_the_connections() -> None:
    cfg = build_config("quick", scenarios=("idle-scaling", "active-scaling", "fd-limit"))
    for t in plan_trials(cfg):
        if t.backend == "select" and t.scenario != "fd-limit":
            cap = max_client_connections("select")
            assert cap is not None and t.total_connections <= cap
    fd_limit = [t for t in plan_trials(cfg) if t.scenario == "fd-limit"]
    assert fd_limit and all(t.probe_connections > 1024 for t in fd_limit)
    assert {t.backend for t in fd_limit} >= {"select"}


def test_haproxy_is_planned_only_where_its_maxconn_holds_the_connections() -> None:
    # HAProxy counts two descriptors per client: haproxy-select holds 499, the others
    # about half of RLIMIT_NOFILE (cells past it left every active connect waiting).
    from servers.haproxy_config import SELECT_MAXCONN, maxconn_for

    assert max_client_connections("haproxy-select") == SELECT_MAXCONN
    nofile = server_nofile()
    assert nofile is not None
    assert max_client_connections("haproxy-epoll") == maxconn_for("epoll", nofile)
    assert max_client_connections("epoll") is None
    cfg = build_config("full", scenarios=("idle-scaling", "fd-limit"))
    trials = plan_trials(cfg)
    for backend in ("haproxy-select", "haproxy-poll", "haproxy-epoll"):
        cap = max_client_connections(backend)
        assert cap is not None
        held = [t for t in trials if t.backend == backend and t.scenario == "idle-scaling"]
        assert held and all(t.total_connections <= cap for t in held)
    # The fd-limit probe still offers haproxy-select more than it holds: that is its point.
    assert any(
        t.backend == "haproxy-select" and t.probe_connections > SELECT_MAXCONN
        for t in trials
        if t.scenario == "fd-limit"
    )


def test_every_public_preset_fits_its_own_budget() -> None:
    for name in ("quick", "standard", "full"):
        cfg = preset_config(name)
        estimate = estimate_plan(cfg, plan_trials(cfg))
        assert estimate.total_s <= cfg.budget_s, (name, estimate.describe())


def test_build_config_rejects_unknown_names() -> None:
    with pytest.raises(ConfigError, match="choose from"):
        build_config("quick", backends=("select", "nope"))


def test_a_scenario_a_preset_does_not_define_is_refused_with_the_presets_that_do() -> None:
    from bench.measure.scenarios import registry
    from bench.measure.scenarios.registry import Scenario

    registry.register(Scenario(name="only-tiny", summary="test", presets={"tiny": object()}))
    try:
        with pytest.raises(ConfigError, match=r"only-tiny \(defined for: tiny\)"):
            build_config("quick", scenarios=("only-tiny",))
    finally:
        registry.registered().pop("only-tiny")


def test_a_preset_backend_that_cannot_run_here_is_skipped_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.commands import main
    from servers import registry

    def reason(self: registry.Backend) -> str | None:
        return "no C compiler: apt-get install gcc python3-dev" if self.family == "c" else None

    monkeypatch.setattr(registry.Backend, "unavailable_reason", reason)
    assert main(["run", "--dry-run"]) == 0
    out, errs = capsys.readouterr()
    assert "skipped backend c-epoll: no C compiler" in errs
    assert " c-epoll " not in out and " epoll " in out
    # Asked for by name, the same backend is refused with the reason.
    assert main(["run", "--dry-run", "--backend", "c-epoll"]) == 2
    assert "apt-get install gcc" in capsys.readouterr().err
