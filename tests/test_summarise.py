"""`bench summarise`: the short answer from several runs, refused when their verdicts differ."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.synthetic_run import SyntheticSpec, make_synthetic_run

from bench.commands import main


def _runs(root: Path, specs: list[SyntheticSpec]) -> list[str]:
    return [str(make_synthetic_run(root / str(i), spec).path) for i, spec in enumerate(specs)]


def test_agreeing_runs_give_one_table_with_the_spread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = _runs(tmp_path, [SyntheticSpec(seed=s) for s in (1, 2, 3)])
    assert main(["summarise", *runs]) == 0
    out = capsys.readouterr().out
    assert "| Claim | Verdict (every run) | Run-to-run spread |" in out
    assert "From 3 runs" in out and "epoll vs select" in out


def test_disagreeing_runs_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    specs = [
        SyntheticSpec(seed=1),
        SyntheticSpec(seed=2),
        SyntheticSpec(seed=3, backends=("epoll",)),
    ]
    runs = _runs(tmp_path, specs)
    assert main(["summarise", *runs]) == 1
    assert "disagree" in capsys.readouterr().err


def test_fewer_than_three_or_repeated_runs_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run,) = _runs(tmp_path, [SyntheticSpec()])
    assert main(["summarise", run, run]) == 2
    assert main(["summarise", run, run, run]) == 2
    assert "same run" in capsys.readouterr().err
