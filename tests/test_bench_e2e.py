"""End to end: ``python -m bench run --preset tiny`` produces every file of a run folder.

The tiny preset measures every scenario (numbers meaningless, seconds long);
this checks the plumbing from servers and load generator to charts and
verdict, not any speed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.tiny_run import REPO, TinyRun

from bench.store import schema
from bench.store.results import load

pytestmark = pytest.mark.slow


def test_every_file_is_written(tiny_run: TinyRun) -> None:
    run = tiny_run.path
    for name in (
        schema.RUN_JSON,
        schema.TRIALS_CSV,
        schema.TRIALS_PARQUET,
        schema.MICRO_CSV,
        schema.MICRO_PARQUET,
        schema.REPORT_MD,
        schema.REPORT_HTML,
        schema.VERDICT_JSON,
        schema.MICRO_RAW_JSON,
    ):
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    charts = run / schema.CHARTS_DIR
    assert list(charts.glob("*.png")) and list(charts.glob("*.svg"))
    raw = [p for p in (run / schema.RAW_DIR).glob("*.json") if p.name != "micro_benchmark.json"]
    data = load(run)
    assert len(raw) == len(data.trials)
    assert set(data.trials["raw_file"]) == {f"raw/{p.name}" for p in raw}


def test_run_json_records_config_machine_and_commit(
    tiny_run: TinyRun,
) -> None:
    run = tiny_run.path
    meta = json.loads((run / schema.RUN_JSON).read_text())
    assert meta["schema_version"] == schema.SCHEMA_VERSION
    assert meta["status"] == "complete"
    assert meta["preset"] == "tiny" and meta["config"]["preset"] == "tiny"
    for key in schema.MACHINE_KEYS:
        assert key in meta["machine"], key
    assert set(schema.GIT_KEYS) <= set(meta["git"])
    assert meta["cells_done"] == meta["cells_total"] > 0


def test_every_scenario_is_measured_with_phases_and_window_edges(
    tiny_run: TinyRun,
) -> None:
    run = tiny_run.path
    trials = load(run).trials
    assert set(trials["scenario"]) == {
        "idle-scaling",
        "idle-steps",
        "active-scaling",
        "fd-limit",
        "churn",
        "ready-fraction",
    }
    ok = trials[trials["status"] == "ok"]
    assert len(ok) == len(trials), trials[["scenario", "backend", "failure_reason"]]
    load_trials = ok[ok["scenario"] != "fd-limit"]
    # A trial whose window did not hold on a busy machine is flagged with the reason
    # (window_connections_changed); every unflagged one measured requests.
    clean = load_trials[~load_trials["flagged"].astype(bool)]
    assert set(clean["scenario"]) == set(load_trials["scenario"])
    assert (clean["requests"] > 0).all()
    assert load_trials["server_cpu_us_per_req"].notna().all()
    assert load_trials["server_wait_calls"].notna().all()
    for rel in load_trials["raw_file"]:
        raw = json.loads((run / rel).read_text())
        phases = raw["phases"]
        order = ["verify_start_utc", "verify_end_utc", "measure_start_utc", "measure_end_utc"]
        assert [phases[k] for k in order] == sorted(phases[k] for k in order)
        assert {"start", "end"} <= set(raw["server_edges"])


def test_fd_limit_shows_select_rejecting_beyond_fd_setsize(
    tiny_run: TinyRun,
) -> None:
    run = tiny_run.path
    trials = load(run).trials
    row = trials[(trials["scenario"] == "fd-limit") & (trials["backend"] == "select")].iloc[0]
    assert row["connections_requested"] > schema.FD_SETSIZE
    assert 0 < row["connections_served"] < schema.FD_SETSIZE
    assert (
        row["server_rejected_fd_setsize"]
        == row["connections_requested"] - row["connections_served"]
    )
    seen = json.loads(row["client_observation"])
    assert seen["ok"] == row["connections_served"]
    assert sum(seen.values()) == row["connections_requested"]


def test_output_names_the_plan_the_verdict_and_the_charts(
    tiny_run: TinyRun,
) -> None:
    run = tiny_run.path
    assert "planned duration" in tiny_run.stdout
    assert str(run / schema.CHARTS_DIR) in tiny_run.stdout
    assert "report.md" in tiny_run.stdout


def test_plot_and_report_redraw_from_the_folder_alone(tiny_run: TinyRun, tmp_path: Path) -> None:
    # A copy: the session's run is shared with other tests, and this one deletes files.
    run = Path(shutil.copytree(tiny_run.path, tmp_path / tiny_run.path.name))
    report, page = run / schema.REPORT_MD, run / schema.REPORT_HTML
    report.unlink()
    page.unlink()
    for command in ("plot", "report"):
        proc = subprocess.run(
            [sys.executable, "-m", "bench", command, str(run)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report.is_file() and page.is_file()
    listing = subprocess.run(
        [sys.executable, "-m", "bench", "list", "--results-dir", str(run.parent)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listing.returncode == 0, listing.stderr
    assert run.name in listing.stdout
