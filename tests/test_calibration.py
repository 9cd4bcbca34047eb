"""The A/A check: the same-server family, `bench run --calibrate`'s plan, `bench calibration`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bench.analyse.calibration import FALSE_CALL_WORDS, format_checks, verdict_checks
from bench.analyse.families import judged_families, roles_of
from bench.analyse.rules import INCONCLUSIVE, NOT_SUPPORTED, PARTLY
from bench.analyse.simulate import SimulationSpec, Simulator
from bench.commands import build_parser
from bench.commands import main as bench_main
from bench.commands.run import _config
from bench.measure.calibration import CALIBRATION_MODULE, CALIBRATION_SCENARIOS
from bench.measure.config import ConfigError, build_config
from bench.measure.plan import plan_trials
from bench.store import schema
from bench.store.results import atomic_write_json, create_run
from servers import registry

REPO = Path(__file__).resolve().parent.parent
FAMILY = registry.FAMILY_SAME_SERVER
AA = {"select": "aa-select", "poll": "aa-poll", "epoll": "aa-epoll"}


@pytest.fixture
def same_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """The family registered for this test only (a copy of the registry, the env restored)."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setenv(registry.PLUGINS_ENV, os.environ.get(registry.PLUGINS_ENV, ""))
    from bench.measure.calibration import enable_calibration_backends

    enable_calibration_backends()


def _python(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != registry.PLUGINS_ENV}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_family_is_not_registered_nor_planned_by_default() -> None:
    out = _python(
        "from servers import registry; from bench.measure.config import preset_config\n"
        "print(registry.names()); print(preset_config('full').backends)"
    )
    assert "aa-" not in out and "epoll" in out


def test_the_family_is_one_server_under_three_mechanisms(same_server: None) -> None:
    members = [registry.get(name) for name in AA.values()]
    assert {b.factory for b in members} == {registry.get("epoll").factory}
    assert [b.mechanism for b in members] == list(AA)
    assert all(b.wait_instrumented and b.fd_number_limit is None for b in members)
    assert len({b.colour for b in members}) == 3
    roles = roles_of(FAMILY)
    assert (roles.subject, roles.comparators, roles.edge) == (
        "aa-epoll",
        ("aa-select", "aa-poll"),
        None,
    )
    trials = pd.DataFrame({"backend": ["aa-select", "aa-epoll"]})
    assert FAMILY in [r.family for r in judged_families(trials)]


def _cells(trials: list[Any], names: dict[str, str]) -> Counter[tuple[Any, ...]]:
    return Counter(
        (t.scenario, names[t.backend], t.mode, t.idle_connections, t.active_connections,
         t.rate_rps_requested, t.repetition)
        for t in trials
        if t.scenario in CALIBRATION_SCENARIOS and t.backend in names
    )  # fmt: skip


@pytest.mark.parametrize("preset", ["quick", "tiny"])
def test_calibrate_measures_the_python_familys_cells_on_the_same_server_family(
    same_server: None, preset: str
) -> None:
    args = build_parser().parse_args(["run", "--calibrate", "--preset", preset])
    cfg = _config(args)
    default = build_config(preset)
    assert cfg.calibrate and cfg.scenarios == CALIBRATION_SCENARIOS
    assert cfg.backends == tuple(AA[b] for b in default.backends if b in AA)
    assert cfg.repetitions == default.repetitions and cfg.measure_s == default.measure_s
    assert CALIBRATION_MODULE in os.environ[registry.PLUGINS_ENV]  # servers inherit it
    planned = plan_trials(cfg)
    mirrored = _cells(plan_trials(default), AA)
    assert _cells(planned, {v: v for v in AA.values()}) == mirrored
    assert len(planned) == sum(mirrored.values())
    assert cfg.to_dict()["calibrate"] is True  # run.json's config


def test_calibrate_keeps_a_named_scenario_and_refuses_others(same_server: None) -> None:
    args = build_parser().parse_args(["run", "--calibrate", "--scenario", "active-scaling"])
    assert _config(args).scenarios == ("active-scaling",)
    for extra in (["--scenario", "fd-limit"], ["--backend", "epoll"]):
        with pytest.raises(ConfigError, match="--calibrate"):
            _config(build_parser().parse_args(["run", "--calibrate", *extra]))


def test_calibrate_plans_through_the_command_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != registry.PLUGINS_ENV}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--calibrate", "--dry-run", "--out", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    shown = {line.split()[2] for line in proc.stdout.splitlines() if line.startswith("  ")}
    assert shown == set(AA.values())
    assert not any(tmp_path.iterdir())


def test_a_verdict_on_simulated_a_a_trials_yields_the_familys_checks(same_server: None) -> None:
    from bench.analyse.verdict import compute_verdict
    from bench.store.results import RunData, empty_table

    table = Simulator(FAMILY).table(SimulationSpec(), np.random.default_rng(1), True)
    run = RunData(
        path=Path("/nonexistent"),
        meta={"run_id": "sim", "config": {"calibrate": True}},
        trials=table,
        micro=empty_table(schema.MICRO_COLUMNS),
    )
    checks = verdict_checks(compute_verdict(run))
    keys = [c.key for c in checks]
    assert "claim 2" in keys and "claim 3 (aa-epoll)" in keys
    assert any("aa-epoll vs aa-select at 1000 idle" in k for k in keys)
    assert any(k.endswith(": aa-poll") for k in keys)
    text = format_checks(checks)
    assert f"in {len(checks)} checks" in text


# ---------------------------------------------------------------- bench calibration


def _verdict(
    claim2: str = INCONCLUSIVE,
    idle_class: str = INCONCLUSIVE,
    claim3: str = INCONCLUSIVE,
    poll_class: str = "unclear",
) -> dict[str, Any]:
    regime = "SUPPORTED" if claim2 == PARTLY else INCONCLUSIVE
    comparison = {
        "backend": "aa-select", "idle_connections": 1000.0, "loop": "closed", "judged": True,
        "class": idle_class, "decision": {"ratio": 1.2, "ci_low": 1.11, "ci_high": 1.3},
    }  # fmt: skip
    metric = {
        "metric": "in-server wait call (CPU time)",
        "backends": {"aa-epoll": {"class": "flat"}, "aa-poll": {"class": poll_class}},
    }
    roles = {"subject": "aa-epoll"}
    return {
        "claims": [
            {"id": "1", "status": INCONCLUSIVE},
            {"id": "2", "families": {FAMILY: {"roles": roles, "status": claim2, "evidence": {
                "regimes": [{"regime": "idle-heavy", "status": regime,
                             "comparisons": [comparison]}]}}}},
            {"id": "3", "families": {FAMILY: {"roles": roles, "status": claim3,
                                              "evidence": {"metrics": [metric]}}}},
        ]
    }  # fmt: skip


def _run(root: Path, verdict: dict[str, Any] | None, calibrate: bool = True) -> str:
    writer = create_run(root, "quick", {"calibrate": calibrate}, {}, {})
    with writer:
        pass
    if verdict is not None:
        atomic_write_json(writer.path / schema.VERDICT_JSON, verdict)
    return str(writer.path)


def test_bench_calibration_counts_each_false_call_and_names_the_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = _run(tmp_path, _verdict(PARTLY, "epoll better", NOT_SUPPORTED, "growing"))
    right = _run(tmp_path, _verdict())
    assert bench_main(["calibration", wrong, right]) == 0
    out = capsys.readouterr().out
    wrong_id, right_id = Path(wrong).name, Path(right).name
    assert f"{wrong_id}: 5 false call(s)" in out and f"{right_id}: 0 false call(s)" in out
    for rule, words in FALSE_CALL_WORDS.items():
        if rule != "edge_vs_level":  # the family has no edge-triggered member
            assert f"  {rule} ({words}): 1 of 2 (50%): {wrong_id}\n" in out
    assert (
        f"claim 2 idle-heavy: aa-epoll vs aa-select at 1000 idle, closed loop: 1 of 2 (50%): "
        f"{wrong_id}" in out
    )
    assert f"claim 3 in-server wait call (CPU time): aa-poll: 1 of 2 (50%): {wrong_id}" in out
    assert "aa-epoll: 0 of" not in out  # a check no run got wrong is not listed


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda root: [_run(root, _verdict(), calibrate=False)], "is not a calibration run"),
        (lambda root: [_run(root, None)], "has no verdict.json"),
        (lambda root: [_run(root, {"claims": []})], "judges no same-server family"),
        (lambda root: [_run(root, _verdict())] * 2, "named twice"),
    ],
)
def test_bench_calibration_refuses_what_it_cannot_tally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Any, expected: str
) -> None:
    assert bench_main(["calibration", *make(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
