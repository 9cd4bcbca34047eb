"""The run store: round trip through disk, refusal of unknown schema versions and runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from fixtures.synthetic_run import SyntheticSpec, make_synthetic_run

from bench.present.listing import format_run_list, list_runs
from bench.store import schema
from bench.store.results import (
    RunNotFoundError,
    UnknownSchemaVersionError,
    create_run,
    load,
)

ROW = {
    "scenario": "idle-scaling", "backend": "epoll", "protocol": "http", "mode": "open",
    "idle_connections": 250, "active_connections": 8, "rate_rps_requested": 1000.0,
    "repetition": 0, "order_index": 1, "status": "ok", "flagged": False,
    "flag_reasons": "", "throughput_rps": 999.5, "latency_p99_us": 812.25,
    "server_rss_bytes": 31_457_280, "loadgen_saturated": True, "raw_file": "raw/t1.json",
}  # fmt: skip


def _new_run(tmp_path: Path):
    return create_run(
        tmp_path, "tiny", {"durations_s": [1.0]}, {"cores": 2}, {"commit": "abc", "dirty": True}
    )


def test_round_trip_keeps_values_dtypes_and_meta(tmp_path: Path) -> None:
    with _new_run(tmp_path) as run:
        run.append_trial(ROW)
        run.append_trial({**ROW, "backend": "select", "status": "failed", "flagged": None,
                          "failure_reason": "server exited 1", "throughput_rps": None,
                          "flag_reasons": ["a", "b"]})  # fmt: skip
        run.write_micro(pd.DataFrame([{"mechanism": "poll", "n_registered": 16, "ready": "one",
                                       "median_us": 1.5, "rounds": 9}]))  # fmt: skip
        run.update_meta(cells_total=2, cells_done=2)
    data = load(run.path)
    assert data.meta["status"] == "complete" and data.meta["finished_utc"]
    assert data.meta["schema_version"] == schema.SCHEMA_VERSION
    assert data.meta["git"] == {"commit": "abc", "dirty": True}
    assert data.meta["cells_done"] == 2 and data.meta["duration_s"] >= 0
    assert list(data.trials.columns) == list(schema.TRIAL_COLUMNS)
    assert [str(t) for t in data.trials.dtypes] == list(schema.TRIAL_COLUMNS.values())
    first, second = data.trials.iloc[0], data.trials.iloc[1]
    assert first["run_id"] == run.run_id
    assert first["idle_connections"] == 250 and first["server_rss_bytes"] == 31_457_280
    assert first["latency_p99_us"] == 812.25 and bool(first["loadgen_saturated"]) is True
    assert second["status"] == "failed" and pd.isna(second["throughput_rps"])
    assert pd.isna(second["flagged"]) and second["flag_reasons"] == "a;b"
    assert data.micro.iloc[0]["median_us"] == 1.5 and data.micro.iloc[0]["rounds"] == 9
    assert data.verdict is None
    # The CSV alone (parquet missing) reads back to the same table.
    (run.path / schema.TRIALS_PARQUET).unlink()
    from_csv = load(run.path).trials
    pd.testing.assert_frame_equal(from_csv, data.trials)


def test_folder_name_sorts_by_time_and_latest_finds_newest(tmp_path: Path) -> None:
    a = _new_run(tmp_path)
    a.mark("complete")
    b = _new_run(tmp_path)
    b.mark("complete")
    assert a.path.name[:16] <= b.path.name[:16]
    stamp, short = b.path.name.split("_")
    assert len(stamp) == 16 and stamp.endswith("Z") and len(short) == 6
    newest = max(a.path.name, b.path.name)
    assert load("latest", results_dir=tmp_path).path.name == newest
    assert load(b.path.name, results_dir=tmp_path).path == b.path
    runs = list_runs(tmp_path)
    assert list(runs["run_id"]) == sorted([a.path.name, b.path.name])
    assert "tiny" in format_run_list(runs)


def test_interrupted_run_is_partial_and_keeps_finished_trials(tmp_path: Path) -> None:
    run = _new_run(tmp_path)
    with pytest.raises(KeyboardInterrupt), run:
        run.append_trial(ROW)
        raise KeyboardInterrupt
    data = load(run.path)
    assert data.meta["status"] == "partial"
    assert len(data.trials) == 1


def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    run = _new_run(tmp_path)
    meta = json.loads((run.path / schema.RUN_JSON).read_text())
    meta["schema_version"] = 99
    (run.path / schema.RUN_JSON).write_text(json.dumps(meta))
    with pytest.raises(UnknownSchemaVersionError, match=r"schema_version 99.*check out the commit"):
        load(run.path)
    assert list_runs(tmp_path).iloc[0]["status"] == "unknown schema"


def test_unknown_run_lists_available_runs(tmp_path: Path) -> None:
    run = _new_run(tmp_path)
    with pytest.raises(RunNotFoundError, match=run.path.name):
        load("20000101T000000Z_ffffff", results_dir=tmp_path)
    with pytest.raises(RunNotFoundError, match="Available runs: none"):
        load("latest", results_dir=tmp_path / "empty")


def test_unknown_trial_column_is_refused(tmp_path: Path) -> None:
    run = _new_run(tmp_path)
    with pytest.raises(ValueError, match="latency_p42_us"):
        run.append_trial({**ROW, "latency_p42_us": 1.0})


def test_synthetic_run_written_through_the_api_loads(tmp_path: Path) -> None:
    spec = SyntheticSpec(repetitions=2, idle_levels=(0, 500), active_levels=(8,), flag_every=5)
    data = make_synthetic_run(tmp_path, spec)
    assert data.meta["preset"] == "synthetic-test"
    assert any("SYNTHETIC" in w for w in data.meta["warnings"])
    assert set(data.trials["scenario"]) == {"idle-scaling", "active-scaling", "fd-limit"}
    assert data.trials["flagged"].sum() == len(data.trials) // 5
    assert all((data.path / f).is_file() for f in data.trials["raw_file"])
    assert len(data.micro) > 0


def test_reading_a_run_folder_needs_only_the_store(tiny_run) -> None:
    """A fresh interpreter loads a real run's tables with no measuring code imported."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from bench.store.results import load\n"
        f"run = load({str(tiny_run.path)!r})\n"
        "assert len(run.trials) > 0 and len(run.micro) > 0, 'empty tables'\n"
        "print(sorted(m for m in sys.modules if m.startswith('bench.measure')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]", proc.stdout
