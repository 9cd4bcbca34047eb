"""The notebooks run top to bottom against real runs, and are committed without outputs.

A notebook that nobody executes rots silently: an API changes, a column is
renamed, and the first user to open it meets a traceback in cell 2. So the
suite uses two real runs with the test-only ``tiny`` preset (seconds long,
numbers meaningless; the first is the session's shared run) and executes each
notebook with nbclient, the way Jupyter would (working directory
``notebooks/``, kernel ``python3``), pointing it at those runs through the
environment variables the notebooks document. The comparison notebook also runs
on two synthetic runs with three repetitions, so that its intervals and "beyond
noise" paths execute too.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from fixtures.synthetic_run import SyntheticSpec, make_synthetic_run
from fixtures.tiny_run import REPO, TinyRun, run_tiny_alone
from nbclient import NotebookClient

from bench.analyse.compare import compare_runs, format_compare
from bench.store import schema
from bench.store.results import available_runs, load

NOTEBOOKS = REPO / "notebooks"
EXPECTED_NOTEBOOKS = ("compare_runs.ipynb", "explore.ipynb")
CELL_TIMEOUT_S = 180


def _committed_notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


# ------------------------------------------------------------- stored without outputs


def test_the_documented_notebooks_exist() -> None:
    names = [p.name for p in _committed_notebooks()]
    assert set(EXPECTED_NOTEBOOKS) <= set(names), names


@pytest.mark.parametrize("path", _committed_notebooks(), ids=lambda p: p.name)
def test_committed_notebook_has_no_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    assert not dirty, (
        f"{path.name}: code cells {dirty} carry outputs or execution counts. Clear them before "
        "committing: in Jupyter, Edit > Clear Outputs of All Cells, then save; or "
        f"`jupyter nbconvert --clear-output --inplace notebooks/{path.name}`"
    )
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", (
        f"{path.name}: kernelspec must be python3 (the kernel the test suite runs it with)"
    )


def test_output_check_catches_a_notebook_with_outputs(tmp_path: Path) -> None:
    """The check above must be able to fail: an executed-looking notebook is refused."""
    nb = nbformat.read(NOTEBOOKS / "explore.ipynb", as_version=4)
    code_cell = next(c for c in nb.cells if c.cell_type == "code")
    code_cell.execution_count = 1
    code_cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello\n")]
    bad = tmp_path / "bad.ipynb"
    nbformat.write(nb, bad)
    with pytest.raises(AssertionError, match="carry outputs"):
        test_committed_notebook_has_no_outputs(bad)


# ------------------------------------------------------------- executed against real runs


@pytest.fixture(scope="module")
def tiny_runs(tiny_run: TinyRun, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two real runs in one results folder: A, every scenario (the session's shared tiny
    run, copied); B, active-scaling (~5 s), made after it.

    B measures a subset of A's cells, which is all a comparison needs, and is
    written without charts so that it also stands for a run with no verdict.json.
    """
    out = tmp_path_factory.mktemp("results")
    run_a = Path(shutil.copytree(tiny_run.path, out / tiny_run.path.name))
    # Alone: the notebooks draw B's usable trials.
    run_b = run_tiny_alone(out, "--scenario", "active-scaling", "--no-charts").path
    assert available_runs(out) == [run_a, run_b]
    return run_a, run_b


def _execute(name: str, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Any:
    """Run a committed notebook in a fresh python3 kernel, as Jupyter would (cwd notebooks/)."""
    for var in ("SELECTBENCH_RUN", "SELECTBENCH_RUN_A", "SELECTBENCH_RUN_B", "BENCH_RESULTS_DIR"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError, with the failing cell, on any exception
    return nb


def _outputs(nb: Any) -> list[dict[str, Any]]:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]


def _text(nb: Any) -> str:
    parts = []
    for o in _outputs(nb):
        if o.output_type == "stream":
            parts.append(o.text)
        elif o.output_type in ("display_data", "execute_result"):
            parts.append(str(o.data.get("text/plain", "")))
    return "\n".join(parts)


def _images(nb: Any) -> int:
    return sum(1 for o in _outputs(nb) if "image/png" in o.get("data", {}))


@pytest.mark.slow
def test_explore_runs_top_to_bottom_on_a_real_run(
    tiny_runs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_a, _ = tiny_runs
    nb = _execute("explore.ipynb", monkeypatch, {"SELECTBENCH_RUN": str(run_a)})
    text = _text(nb)
    assert f"run {run_a.name}" in text
    assert "(no data for this chart in this run)" not in text
    # Six bench.present.charts figures (the tiny run has data for each) and the DIY chart.
    assert _images(nb) >= 7
    verdict = load(run_a).verdict
    assert verdict is not None
    html = "\n".join(str(o.get("data", {}).get("text/html", "")) for o in _outputs(nb))
    for claim in verdict["claims"]:
        assert claim["status"] in html


@pytest.mark.slow
def test_explore_falls_back_to_latest_and_a_computed_verdict(
    tiny_runs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """'latest' under BENCH_RESULTS_DIR is run B, which has no verdict.json and few scenarios."""
    _, run_b = tiny_runs
    assert not (run_b / schema.VERDICT_JSON).exists()
    nb = _execute("explore.ipynb", monkeypatch, {"BENCH_RESULTS_DIR": str(run_b.parent)})
    text = _text(nb)
    assert f"run {run_b.name}" in text
    assert "(no data for this chart in this run)" in text  # B has no idle-scaling, no micro
    assert not (run_b / schema.VERDICT_JSON).exists(), "the notebook must not write into a run"


@pytest.mark.slow
def test_compare_runs_defaults_to_the_two_latest_runs(
    tiny_runs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_a, run_b = tiny_runs
    nb = _execute("compare_runs.ipynb", monkeypatch, {"BENCH_RESULTS_DIR": str(run_a.parent)})
    text = _text(nb)
    # Exactly what `python -m bench compare A B` prints for the same two runs.
    expected = format_compare(compare_runs(load(run_a), load(run_b)))
    assert f"Run A: {run_a.name}   Run B: {run_b.name}" in expected
    assert expected in text
    assert _images(nb) == 2


@pytest.mark.slow
def test_compare_runs_on_runs_with_repetitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Synthetic runs (3 repetitions, B 30% faster) exercise intervals and 'beyond noise'."""
    small = SyntheticSpec(idle_levels=(0, 1000), active_levels=(8,), backends=("select", "epoll"))
    a = make_synthetic_run(tmp_path / "a", small)
    b = make_synthetic_run(
        tmp_path / "b", SyntheticSpec(**{**small.__dict__, "seed": 11, "throughput_scale": 1.3})
    )
    nb = _execute(
        "compare_runs.ipynb",
        monkeypatch,
        {"SELECTBENCH_RUN_A": str(a.path), "SELECTBENCH_RUN_B": str(b.path)},
    )
    comparison = compare_runs(a, b)
    assert comparison["beyond_noise"].any()
    assert format_compare(comparison, only_beyond_noise=True) in _text(nb)
