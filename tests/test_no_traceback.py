"""No traceback reaches a user: every command's bad arguments and every run-folder file damaged
in several ways end in one error line or in a rebuild that says so (issue 20)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.tiny_run import TinyRun

from bench.commands import main
from bench.store import schema
from bench.store.results import RunFolderError, load

NOT_A_RUN = "<an existing folder without run.json>"

BAD_ARGUMENTS = [
    (["report", "/nonexistent/run"], "no run '/nonexistent/run'"),
    (["report", NOT_A_RUN], "no run"),
    (["plot", "/nonexistent/run"], "no run"),
    (["plot", NOT_A_RUN], "no run"),
    (["compare", "/nonexistent/a", NOT_A_RUN], "no run"),
    (["compare", "--html", "/nonexistent/dir/x.html", NOT_A_RUN, NOT_A_RUN], "no run"),
    (["summarise", "/nonexistent/a", "/nonexistent/b", "/nonexistent/c"], "no run"),
    (["summarise", NOT_A_RUN], "give at least 3 runs"),
    (["calibration", "/nonexistent/run"], "no run"),
    (["calibration", NOT_A_RUN], "no run"),
    (["run", "--preset", "nope", "--dry-run"], "unknown preset 'nope'"),
    (["run", "--preset", "tiny", "--repetitions", "abc", "--dry-run"], "invalid int value"),
    (["run", "--preset", "tiny", "--repetitions", "0", "--dry-run"], "at least 1"),
    (["run", "--preset", "tiny", "--server-cpu", "999", "--dry-run"], "server CPU 999"),
    (["run", "--preset", "tiny", "--budget-s", "-5", "--dry-run"], "positive number"),
    (["run", "--preset", "tiny", "--budget-s", "nan", "--dry-run"], "positive number"),
    (["run", "--preset", "tiny", "--order-seed", "-1", "--dry-run"], "non-negative"),
    (["run", "--preset", "tiny", "--scenario", "nope", "--dry-run"], "unknown scenario nope"),
    (["run", "--preset", "tiny", "--backend", "nope", "--dry-run"], "unknown backend nope"),
    (["run", "--preset", "tiny", "--allow-remote", "10.0.0.1", "--dry-run"], "--cluster"),
    (["doctor", "--connections", "abc"], "invalid int value"),
    (["doctor", "--connections", "0"], "at least 1"),
    (["nope"], "invalid choice: 'nope'"),
]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors (after printing one)
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def _one_error(code: int, stderr: str, says: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("bench: error:")]
    assert code != 0 and len(errors) == 1, stderr
    assert says in errors[0], errors[0]
    # Named by its cause, not caught by the last-resort handler.
    assert "unexpected" not in errors[0], errors[0]
    others = [ln for ln in stderr.splitlines() if ln and not ln.startswith("bench: error:")]
    assert all(ln.startswith(("usage:", " ")) for ln in others), stderr  # argparse's usage
    return errors[0]


@pytest.fixture(autouse=True)
def no_debug_tracebacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_TRACEBACK", raising=False)


@pytest.mark.parametrize(("argv", "says"), BAD_ARGUMENTS, ids=lambda v: " ".join(v)[:60])
def test_bad_arguments_end_in_one_error_line(
    argv: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(tmp_path) if a == NOT_A_RUN else a for a in argv]
    code, stderr = _run(argv, capsys)
    _one_error(code, stderr, says)


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\xff not JSON, not CSV\n,,,\x01\n")


def _missing(path: Path) -> None:
    path.unlink()


def _version_99(path: Path) -> None:
    doc = json.loads(path.read_text())
    doc["schema_version"] = 99
    path.write_text(json.dumps(doc))


def _not_an_object(path: Path) -> None:
    path.write_text("[1, 2, 3]")


Damage = Callable[[Path], None]
DAMAGES: dict[str, Damage] = {
    "truncated": _truncated,
    "empty": _empty,
    "garbage": _garbage,
    "missing": _missing,
}
JSON_DAMAGES: dict[str, Damage] = {
    **DAMAGES,
    "version 99": _version_99,
    "not an object": _not_an_object,
}
TRIAL_RAW = "<a trial's raw document>"

# (file, damages, what `bench report` must say: None = a rebuild, else the refusal's words)
CASES: list[tuple[str, dict[str, Damage], str | None]] = [
    (schema.RUN_JSON, {k: v for k, v in JSON_DAMAGES.items() if k != "missing"}, "run.json"),
    (schema.RUN_JSON, {"missing": _missing}, "no run"),
    (schema.TRIALS_CSV, DAMAGES, None),
    (schema.TRIALS_PARQUET, DAMAGES, None),
    (schema.MICRO_CSV, DAMAGES, None),
    (schema.MICRO_PARQUET, DAMAGES, None),
    (schema.VERDICT_JSON, JSON_DAMAGES, None),
    (TRIAL_RAW, JSON_DAMAGES, "is damaged"),
    (schema.MICRO_RAW_JSON, JSON_DAMAGES, "is damaged"),
]
DAMAGE_CASES = [
    pytest.param(file, damage, says, id=f"{file} {name}")
    for file, damages, says in CASES
    for name, damage in damages.items()
]


def _target(run: Path, file: str) -> Path:
    if file == TRIAL_RAW:
        return sorted((run / schema.RAW_DIR).glob("0*.json"))[0]
    return run / file


@pytest.mark.slow
@pytest.mark.parametrize(("file", "damage", "says"), DAMAGE_CASES)
def test_each_damaged_file_is_rebuilt_or_refused_in_one_line(
    tiny_run: TinyRun,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    file: str,
    damage: Damage,
    says: str | None,
) -> None:
    run = Path(shutil.copytree(tiny_run.path, tmp_path / "runs" / tiny_run.path.name))
    target = _target(run, file)
    damage(target)

    listed, list_err = _run(["list", "--results-dir", str(run.parent)], capsys)
    code, stderr = _run(["report", str(run)], capsys)

    assert listed == 0 and not list_err, list_err
    if says is not None:
        message = _one_error(code, stderr, says)
        if file != schema.RUN_JSON or "missing" not in str(damage):
            assert str(target) in message or target.name in message
        return
    assert code == 0, stderr
    assert "Traceback" not in stderr and "error" not in stderr, stderr
    notes = [line for line in stderr.splitlines() if line.startswith("bench: note:")]
    if file == schema.VERDICT_JSON:  # derived data: rewritten whatever became of it
        assert json.loads(target.read_text())["claims"]
        return
    assert len(notes) == 1 and "rebuilt from its other copy" in notes[0], stderr
    assert len(load(run).trials) == len(load(tiny_run.path).trials)


@pytest.mark.slow
@pytest.mark.parametrize("table", [("trials", "raw/ ("), ("micro", schema.MICRO_RAW_JSON)])
def test_both_copies_of_a_table_damaged_are_rebuilt_from_raw(
    tiny_run: TinyRun, tmp_path: Path, table: tuple[str, str]
) -> None:
    name, source = table
    run = Path(shutil.copytree(tiny_run.path, tmp_path / tiny_run.path.name))
    _garbage(run / f"{name}.csv")
    _missing(run / f"{name}.parquet")
    notes: list[str] = []

    data = load(run, notify=notes.append)
    intact = load(tiny_run.path)

    assert len(notes) == 1 and f"{name} table rebuilt from {source}" in notes[0]
    assert getattr(data, name).equals(getattr(intact, name))


@pytest.mark.slow
@pytest.mark.parametrize("command", ["plot", "compare", "summarise", "calibration", "report"])
def test_every_reading_command_refuses_a_damaged_raw_file(
    tiny_run: TinyRun, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    runs = [Path(shutil.copytree(tiny_run.path, tmp_path / f"copy{i}")) for i in range(3)]
    raw = _target(runs[0], TRIAL_RAW)
    _truncated(raw)
    argv = {
        "compare": [command, str(runs[0]), str(runs[1])],
        "summarise": [command, *map(str, runs)],
    }.get(command, [command, str(runs[0])])

    code, stderr = _run(argv, capsys)

    assert str(raw) in _one_error(code, stderr, "is damaged")
    with pytest.raises(RunFolderError, match="is damaged"):
        load(runs[0])
