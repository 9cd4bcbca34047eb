"""Presets choose backends by role, so a registered backend joins its family's cells; a
backend named with --backend is planned in every cell it can serve, and the rest are
stated with the reason (or the run refuses it)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bench.commands import run as run_command
from bench.measure.config import build_config
from bench.measure.plan import plan_skips, plan_trials
from bench.measure.trial import Trial
from servers import registry
from servers.limits import FD_SETSIZE

REPO = Path(__file__).resolve().parent.parent
CPUS = (0, 1)


def _backend(name: str, family: str, mechanism: str, **fields: object) -> registry.Backend:
    declared: dict[str, object] = {
        "wait_instrumented": True, "fd_number_limit": None, "colour": "#e377c2",
        "factory": "toy_module:make_server", **fields,
    }  # fmt: skip
    return registry.Backend(name=name, family=family, mechanism=mechanism, **declared)  # type: ignore[arg-type]


# Each beside the built-in backend whose cells it must share: same family, same limits.
TWIN_OF = {
    "toy-poll": "poll",
    "toy-select": "select",
    "c-toy": "c-poll",
}
PLUGINS = (
    _backend("toy-poll", registry.FAMILY_PYTHON_LOOP, "toy"),
    _backend("toy-select", registry.FAMILY_PYTHON_LOOP, "toy", fd_number_limit=FD_SETSIZE),
    _backend("c-toy", registry.FAMILY_C, "toy"),
)


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by the test vanish after it."""
    registry.all_backends()  # built-ins and plugins loaded before the copy
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def _plan(preset: str, **choices: object) -> list[Trial]:
    cfg = build_config(preset, order_seed=1, allowed_cpus=CPUS, **choices)  # type: ignore[arg-type]
    return plan_trials(cfg)


def _cells(trials: list[Trial], backend: str) -> set[tuple[str, str, int]]:
    return {(t.scenario, t.cell, t.repetition) for t in trials if t.backend == backend}


@pytest.mark.parametrize("preset", ["quick", "standard", "full", "tiny"])
@pytest.mark.usefixtures("isolated_registry")
def test_registered_backends_join_the_cells_of_their_role(preset: str) -> None:
    before = _plan(preset)
    for backend in PLUGINS:
        registry.register(backend)
    after = _plan(preset)
    builtin = [t for t in after if t.backend not in TWIN_OF]
    key = Counter((t.scenario, t.backend, t.cell, t.repetition) for t in before)
    assert Counter((t.scenario, t.backend, t.cell, t.repetition) for t in builtin) == key
    if preset == "tiny":  # its roles name the select and epoll mechanisms: not "toy"
        assert not any(t.backend in TWIN_OF for t in after)
        return
    for plugin, twin in TWIN_OF.items():
        assert _cells(after, plugin) == _cells(after, twin), (plugin, twin)
    assert _cells(after, "toy-poll") and _cells(after, "toy-select")
    if preset == "quick":
        assert _cells(after, "c-toy")


def test_default_preset_dry_run_measures_the_readme_plugin(tmp_path: Path) -> None:
    """The README's "Adding a backend" declaration, in a module outside the packages."""
    (tmp_path / "readme_plugin.py").write_text(
        "from servers.registry import Backend, FAMILY_PYTHON_LOOP, register\n"
        "register(Backend(name='toy', family=FAMILY_PYTHON_LOOP, mechanism='poll',\n"
        "    wait_instrumented=True, fd_number_limit=None, colour='#e377c2',\n"
        "    factory='readme_plugin:make_server'))\n"
    )
    env = {"PYTHONPATH": f"{tmp_path}:{REPO}", "SELECTBENCH_PLUGINS": "readme_plugin"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--dry-run", "--order-seed", "1",
         "--out", str(tmp_path / "out")],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        env={**_inherited_env(), **env},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("  ")]
    scenarios_of = {b: {r[1] for r in rows if r[2] == b} for b in ("toy", "poll")}
    assert scenarios_of["toy"] == scenarios_of["poll"] == {
        "idle-scaling", "active-scaling", "fd-limit"
    }  # fmt: skip
    assert "for the plugin backends toy" in proc.stdout


def _inherited_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SELECTBENCH_PLUGINS")}


def test_named_haproxy_epoll_is_planned_in_every_idle_scaling_cell_or_says_why() -> None:
    trials = _plan("quick", scenarios=("idle-scaling",), backends=("epoll", "haproxy-epoll"))
    cfg = build_config(
        "quick", scenarios=("idle-scaling",), backends=("epoll", "haproxy-epoll"),
        allowed_cpus=CPUS,
    )  # fmt: skip
    skipped = {n for s in plan_skips(cfg) if s.backend == "haproxy-epoll" for n in s.connections}
    haproxy = _cells(trials, "haproxy-epoll")
    assert haproxy, "haproxy-epoll holds the 8 active connections of every 0-idle cell"
    # epoll holds every cell: the quick preset's open and closed sweeps, select's counts too.
    epoll = [t for t in trials if t.backend == "epoll"]
    assert {(t.mode, t.idle_connections) for t in epoll} == {
        (mode, idle) for mode in ("open", "closed") for idle in (0, 500, 1000, 4000)
    }
    for t in epoll:
        key = (t.scenario, t.cell, t.repetition)
        assert key in haproxy or t.total_connections in skipped, key


def test_named_backends_cells_out_of_reach_are_stated_with_the_reason() -> None:
    cfg = build_config(
        "quick", scenarios=("idle-scaling",), backends=("select", "epoll"), allowed_cpus=CPUS
    )
    (skip,) = plan_skips(cfg)
    assert (skip.backend, skip.scenario, skip.connections) == (
        "select",
        "idle-scaling",
        (4008,) * 2,
    )
    held = FD_SETSIZE - registry.SERVER_RESERVED_FDS
    assert skip.reason.startswith(f"it holds at most {held} clients")
    assert f"below {FD_SETSIZE}" in skip.describe()
    # A preset's own choice of backends per cell is silent: its sweeps are made for them.
    assert plan_skips(build_config("standard", allowed_cpus=CPUS)) == []


@pytest.mark.usefixtures("isolated_registry")
def test_a_plugin_backend_the_preset_chose_is_skipped_with_the_reason() -> None:
    registry.register(_backend("toy-echo", registry.FAMILY_PYTHON_LOOP, "toy", protocols=("echo",)))
    cfg = build_config("quick", allowed_cpus=CPUS)
    assert "toy-echo" in cfg.backends
    skips = plan_skips(cfg)
    assert {s.backend for s in skips} == {"toy-echo"}
    assert {s.scenario for s in skips} == {"idle-scaling", "active-scaling", "fd-limit"}
    assert all(s.reason == "it serves echo, not http" for s in skips)
    assert not any(t.backend == "toy-echo" for t in plan_trials(cfg))


@pytest.mark.usefixtures("isolated_registry")
def test_a_backend_that_serves_no_chosen_cell_is_refused_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.register(_backend("toy-echo", registry.FAMILY_PYTHON_LOOP, "toy", protocols=("echo",)))
    measured: list[list[str]] = []
    monkeypatch.setattr(run_command, "_measure", lambda cfg, trials, extra, warnings, *a: 0)

    def bench_run(*backends: str) -> int:
        args = argparse.ArgumentParser()
        run_command.add_arguments(args)
        parsed: argparse.Namespace = args.parse_args(
            ["--backend", ",".join(backends), "--scenario", "idle-scaling", "--order-seed", "1"]
        )
        return run_command._main(parsed, None)

    assert bench_run("epoll", "toy-echo") == run_command.EXIT_USAGE
    err = capsys.readouterr().err
    assert "toy-echo is not planned in 8 idle-scaling cell(s)" in err
    assert "it serves echo, not http" in err and "drop it from --backend" in err

    # Partly out of reach: measured where it fits, the rest stated and kept in the run log.
    def capture(cfg: object, trials: object, extra: float, warnings: list[str], *a: object) -> int:
        measured.append(list(warnings))
        return 0

    monkeypatch.setattr(run_command, "_measure", capture)
    monkeypatch.setattr(run_command, "_quiet_or_warning", lambda cfg, require: None)
    assert bench_run("select", "epoll") == run_command.EXIT_OK
    (warnings,) = measured
    assert any(w.startswith("select is not planned in 2 idle-scaling cell(s)") for w in warnings)
    assert "warning: select is not planned" in capsys.readouterr().err


def test_select_past_fd_setsize_in_quick_only_in_fd_limit_and_past_1024_in_full() -> None:
    """c-select-big (registry.SELECT_PAST_FD_SETSIZE): quick's budget holds its fd-limit cell
    only; full offers it 19,000 connections and sweeps its idle-scaling past FD_SETSIZE."""
    assert registry.SELECT_PAST_FD_SETSIZE.names() == ("c-select-big",)
    quick = [t for t in _plan("quick") if t.backend == "c-select-big"]
    assert [(t.scenario, t.probe_connections) for t in quick] == [("fd-limit", 2000)]
    full = [t for t in _plan("full") if t.backend == "c-select-big"]
    assert {t.probe_connections for t in full if t.scenario == "fd-limit"} == {19000}
    idle = {t.idle_connections for t in full if t.scenario == "idle-scaling"}
    assert max(idle) > FD_SETSIZE and min(idle) == 0
