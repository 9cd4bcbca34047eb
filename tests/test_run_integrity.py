"""A run folder proves its integrity: damaged tables are rebuilt from raw/, damaged raw files
refused, and a run whose writer died is labelled interrupted (issue 20)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fixtures.tiny_run import REPO, TinyRun

from bench.present.html_report import render_html_report
from bench.present.listing import list_runs
from bench.present.report import render_report
from bench.store import manifest, schema
from bench.store.liveness import GONE
from bench.store.results import RunIntegrityError, create_run, load

ROW = {
    "scenario": "idle-scaling", "backend": "epoll", "protocol": "http", "mode": "open",
    "idle_connections": 50, "active_connections": 8, "rate_rps_requested": 300.0,
    "repetition": 0, "status": "ok", "flagged": False, "throughput_rps": 299.5,
}  # fmt: skip


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True, text=True
    )


def _copy(run: Path, dest: Path) -> Path:
    return Path(shutil.copytree(run, dest / run.name))


def _verdict_without_time(path: Path) -> dict:
    doc = json.loads((path / schema.VERDICT_JSON).read_text())
    doc.pop("generated_utc")
    return doc


@pytest.mark.slow
def test_truncated_trials_table_is_rebuilt_from_raw_with_the_same_verdict(
    tiny_run: TinyRun, tmp_path: Path
) -> None:
    intact = _copy(tiny_run.path, tmp_path / "intact")
    damaged = _copy(tiny_run.path, tmp_path / "damaged")
    lines = (damaged / schema.TRIALS_CSV).read_text().splitlines(keepends=True)
    (damaged / schema.TRIALS_CSV).write_text("".join(lines[:5]))  # header and 4 rows
    (damaged / schema.TRIALS_PARQUET).unlink()

    ok = _bench("report", str(intact))
    assert ok.returncode == 0, ok.stderr
    proc = _bench("report", str(damaged))

    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(notes) == 1 and "Traceback" not in proc.stderr, proc.stderr
    trials = len(lines) - 1
    assert "trials table rebuilt from raw/" in notes[0] and f"({trials} trials)" in notes[0]
    assert _verdict_without_time(damaged) == _verdict_without_time(intact)
    assert f"{trials} of {trials} trials done" in (damaged / schema.REPORT_MD).read_text()
    # Written back with its manifest: the next read has nothing to repair.
    assert len(load(damaged).trials) == trials
    again = _bench("report", str(damaged))
    assert again.returncode == 0 and "note" not in again.stderr, again.stderr


@pytest.mark.slow
def test_a_damaged_raw_file_is_refused_naming_the_file(tiny_run: TinyRun, tmp_path: Path) -> None:
    run = _copy(tiny_run.path, tmp_path)
    raw = sorted((run / schema.RAW_DIR).glob("0*.json"))[1]
    doc = json.loads(raw.read_text())
    doc["row"]["throughput_rps"] = 1.0  # valid JSON, edited numbers
    raw.write_text(json.dumps(doc))

    proc = _bench("report", str(run))

    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(raw) in lines[0], proc.stderr
    assert "SHA-256 differs" in lines[0] or "bytes where the manifest lists" in lines[0]


def test_the_manifest_lists_every_table_and_raw_file_the_writer_wrote(tmp_path: Path) -> None:
    with create_run(tmp_path, "tiny", {}, {}, {}) as run:
        rel = run.write_raw_json("0000_t.json", {"trial": {}, "row": ROW})
        run.append_trial({**ROW, "order_index": 0, "raw_file": rel})
    meta = json.loads((run.path / schema.RUN_JSON).read_text())
    listed = meta["manifest"]
    assert meta["schema_version"] == schema.SCHEMA_VERSION
    assert set(listed["raw"]) == {"0000_t.json"} and listed["raw"]["0000_t.json"]["trial"]
    for name in (schema.TRIALS_CSV, schema.TRIALS_PARQUET):
        entry = listed["tables"][name]
        assert entry["rows"] == 1 and manifest.mismatch(run.path / name, entry) is None
    assert not (run.path / schema.RESERVE_FILE).exists()
    assert meta["writer"]["pid"] > 0 and meta["status"] == "complete"


def _version1(path: Path) -> None:
    """Make a folder look written before the manifest: no manifest, writer or raw rows."""
    meta = json.loads((path / schema.RUN_JSON).read_text())
    for key in ("manifest", "writer", "failure"):
        meta.pop(key)
    meta["schema_version"] = 1
    (path / schema.RUN_JSON).write_text(json.dumps(meta))
    for raw in (path / schema.RAW_DIR).glob("*.json"):
        doc = json.loads(raw.read_text())
        doc.pop("row", None)
        raw.write_text(json.dumps(doc))


def test_a_version1_folder_is_read_unverified_and_refused_when_its_table_lacks_raw_trials(
    tmp_path: Path,
) -> None:
    with create_run(tmp_path, "tiny", {}, {}, {}) as run:
        for i in range(3):
            rel = run.write_raw_json(f"000{i}_t.json", {"trial": {}, "row": ROW})
            run.append_trial({**ROW, "order_index": i, "raw_file": rel})
    _version1(run.path)
    assert len(load(run.path).trials) == 3

    (run.path / schema.TRIALS_PARQUET).unlink()
    csv = run.path / schema.TRIALS_CSV
    csv.write_text("".join(csv.read_text().splitlines(keepends=True)[:2]))
    refusal = r"lacks 2 of the 3 trials.*cannot be rebuilt: .*0000_t.json holds no table row"
    with pytest.raises(RunIntegrityError, match=refusal):
        load(run.path)


def test_a_table_damaged_after_the_last_manifest_update_is_rebuilt_with_every_raw_trial(
    tmp_path: Path,
) -> None:
    """A raw file written after run.json's last update (a crash between the two) still counts."""
    with create_run(tmp_path, "tiny", {}, {}, {}) as run:
        first = {**ROW, "order_index": 0}
        run.append_trial({**first, "raw_file": run.write_raw_json("0000_t.json", {"row": first})})
    late = {**ROW, "order_index": 1, "backend": "select"}
    (run.path / schema.RAW_DIR / "0001_t.json").write_text(json.dumps({"trial": {}, "row": late}))
    notes: list[str] = []

    data = load(run.path, notify=notes.append)

    assert list(data.trials["backend"]) == ["epoll", "select"]
    assert list(data.trials["raw_file"]) == ["raw/0000_t.json", "raw/0001_t.json"]
    assert len(notes) == 1 and "lacks 1 of the 2 trials in raw/" in notes[0]


KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from bench.store.results import create_run
    run = create_run(sys.argv[1], "tiny", {}, {}, {}, cells_total=5)
    row = {**%r, "order_index": 0, "started_utc": "2026-01-01T00:00:00Z"}
    rel = run.write_raw_json("0000_t.json", {"trial": {}, "row": row})
    run.append_trial({**row, "raw_file": rel})
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_running_run_whose_writer_was_killed_reads_as_interrupted(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER % (ROW,), str(tmp_path)],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == -9, proc.stderr
    (path,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert json.loads((path / schema.RUN_JSON).read_text())["status"] == "running"
    assert (path / schema.RESERVE_FILE).is_file()

    listed = list_runs(tmp_path).iloc[0]
    data = load(path)

    assert listed["status"] == GONE
    assert listed["last_trial"] == "1 trials written; last: 0000_t, started 2026-01-01T00:00:00Z"
    assert data.state.status == "interrupted"
    assert not (path / schema.RESERVE_FILE).exists()  # given back by the reader
    assert f"Status **{GONE} (1 trials written; last: 0000_t" in render_report(data)
    assert f"Status <b>{GONE} (1 trials written; last: 0000_t" in render_html_report(data, None)


def test_a_run_written_before_this_boot_is_interrupted_and_a_live_one_running(
    tmp_path: Path,
) -> None:
    run = create_run(tmp_path, "tiny", {}, {}, {})
    assert load(run.path).state.label.startswith("running (PID ")
    meta = json.loads((run.path / schema.RUN_JSON).read_text())
    meta["writer"]["boot_id"] = "another-boot"
    (run.path / schema.RUN_JSON).write_text(json.dumps(meta))
    assert load(run.path).state.label == GONE
