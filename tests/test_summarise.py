"""`bench summarise`: the short answer from several runs, claim 2's cells pooled over them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fixtures.synthetic_run import SyntheticSpec, make_synthetic_run

from bench.commands import main
from bench.store import manifest
from bench.store.results import load

# The tests build and pool several synthetic runs (a few seconds each); three agreeing
# runs are shared by the module.
pytestmark = pytest.mark.slow


def _runs(root: Path, specs: list[SyntheticSpec]) -> list[str]:
    return [str(make_synthetic_run(root / str(i), spec).path) for i, spec in enumerate(specs)]


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Three agreeing synthetic runs (seeds 1-3), made once: the tests only read them."""
    return _runs(tmp_path_factory.mktemp("three"), [SyntheticSpec(seed=s) for s in (1, 2, 3)])


def test_agreeing_runs_give_one_table_with_the_spread(
    three_runs: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["summarise", *three_runs]) == 0
    out = capsys.readouterr().out
    assert "| Claim | Verdict (every run) | Run-to-run spread |" in out
    assert "From 3 runs" in out and "epoll vs select" in out
    # Each range names its loop and metric: ratios of different loops never share one.
    assert "(closed loop, server CPU per request)" in out


def test_a_cell_judged_in_different_loops_keeps_its_ranges_apart(
    three_runs: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Copies: this test rewrites the third run.
    runs = [str(shutil.copytree(r, tmp_path / str(i))) for i, r in enumerate(three_runs)]
    # The third run's plan measured select's idle-scaling in open loop only, so its
    # idle-heavy comparison is judged in open loop there (RULES['regimes']).
    trials = load(Path(runs[2])).trials
    closed_select = (
        (trials["scenario"] == "idle-scaling") & (trials["backend"] == "select")
        & (trials["mode"] == "closed")
    )  # fmt: skip
    trials = trials[~closed_select]
    data = trials.to_csv(index=False).encode()
    (Path(runs[2]) / "trials.csv").write_bytes(data)
    (Path(runs[2]) / "trials.parquet").unlink(missing_ok=True)
    # A deliberate edit, so recorded in run.json's manifest as the writer records its writes
    # (an unrecorded one is damage, which the reader repairs from raw/ or refuses).
    meta_path = Path(runs[2]) / "run.json"
    meta = json.loads(meta_path.read_text())
    tables = meta["manifest"]["tables"]
    tables["trials.csv"] = manifest.table_entry(data, len(trials))
    del tables["trials.parquet"]
    meta_path.write_text(json.dumps(meta))
    assert main(["report", runs[2]]) == 0
    capsys.readouterr()
    assert main(["summarise", *runs]) == 0
    out = capsys.readouterr().out
    closed = "(closed loop, server CPU per request, 2 of 3 runs)"
    opened = "(open loop, server CPU per request, 1 of 3 runs)"
    assert f"epoll vs select at 1008 connections {closed}" in out
    assert f"epoll vs select at 1008 connections {opened}" in out


def test_disagreeing_runs_are_pooled_not_refused(
    three_runs: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = [*three_runs[:2], *_runs(tmp_path, [SyntheticSpec(seed=3, backends=("epoll",))])]
    assert main(["summarise", *runs]) == 0
    out = capsys.readouterr().out
    assert "The runs' verdicts differ" in out and "in 2 of 3 runs" in out
    # The third run has no select: its cells pool the two runs that measured them.
    assert "| Regime | Comparison | Pooled ratio | Status | Between runs |" in out
    assert "(2 of 3 runs) |" in out and "tau " in out


def test_pooled_cells_apply_the_claim2_rule_to_the_pooled_interval(
    three_runs: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["summarise", *three_runs]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "x [" in line]
    assert rows
    for row in rows:
        interval = row.split("x [")[1].split("]")[0]
        lo, hi = (float(v) for v in interval.split(", "))
        status = row.split(" | ")[3]
        if lo > 1.1:
            assert status == "epoll better"
        elif hi < 1 / 1.1:
            assert status == "epoll worse"
        elif lo >= 1 / 1.1 and hi <= 1.1:
            assert status == "EQUIVALENT"
        else:
            assert status == "INCONCLUSIVE"


def test_fewer_than_three_or_repeated_runs_are_refused(
    three_runs: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    run = three_runs[0]
    assert main(["summarise", run, run]) == 2
    assert main(["summarise", run, run, run]) == 2
    assert "same run" in capsys.readouterr().err
