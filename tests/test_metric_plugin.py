"""A metric declared and computed by a module outside the packages reaches the trial table,
`bench compare` and report.md: the README's "Adding a metric" steps, end to end.

The plugin is written to a temporary folder and named in SELECTBENCH_PLUGINS, the route
backends and scenarios take; nothing inside bench/, servers/ or loadgen/ names it.
One tiny run of one cell (active-scaling, epoll) is enough to carry it through.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from fixtures.machine_share import machine_alone

from bench import metrics
from bench.store import schema
from bench.store.results import load

REPO = Path(__file__).resolve().parent.parent
PLUGIN = "requests_per_wait_plugin"
METRIC = "requests_per_wait_call"
PLUGIN_SOURCE = f'''
from bench import metrics


def requests_per_wait_call(rec):
    """Requests the load generator saw answered per wait call the server made."""
    calls = rec.columns[metrics.SERVER_WAIT_CALLS.name]
    return rec.load.requests / calls if calls else None


metrics.register(
    metrics.Metric(
        name="{METRIC}",
        unit="requests per call",
        dtype="float64",
        better=metrics.Better.HIGHER,
        description="requests answered per wait call (a test plugin)",
        compute=requests_per_wait_call,
        compared=True,
        reported=True,
    )
)
'''


def _bench(args: list[str], plugin_dir: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["SELECTBENCH_PLUGINS"] = PLUGIN
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(plugin_dir), str(REPO), env.get("PYTHONPATH", "")) if p
    )
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_a_plugin_metric_reaches_the_table_compare_and_the_report(tmp_path: Path) -> None:
    plugin_dir = tmp_path / "plugin"
    plugin_dir.mkdir()
    (plugin_dir / f"{PLUGIN}.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    out = tmp_path / "results"
    with machine_alone():  # it reads the metric of the usable trials
        _bench(
            ["run", "--preset", "tiny", "--scenario", "active-scaling", "--backend", "epoll",
             "--out", str(out), "--no-charts"],
            plugin_dir,
        )  # fmt: skip
    (run,) = [p for p in out.iterdir() if (p / schema.RUN_JSON).is_file()]
    assert METRIC not in metrics.names()  # this process never loaded the plugin

    # The trial table: its own column, after the built-in ones, computed from the record.
    for table in (
        pd.read_csv(run / schema.TRIALS_CSV),
        pd.read_parquet(run / schema.TRIALS_PARQUET),
    ):
        assert list(table.columns)[-1] == METRIC
        ok = table[table["status"] == "ok"]
        assert not ok.empty
        expected = ok["requests"] / ok["server_wait_calls"]
        assert (ok[METRIC] > 0).all()
        assert ok[METRIC].tolist() == pytest.approx(expected.tolist())

    # Read back where the plugin is not loaded (this process): the column is kept.
    trials = load(run).trials
    assert list(trials.columns)[-1] == METRIC
    assert trials[METRIC].notna().any()

    compared = _bench(["compare", str(run), str(run)], plugin_dir).stdout
    assert METRIC in compared

    _bench(["report", str(run)], plugin_dir)
    report = (run / schema.REPORT_MD).read_text()
    assert f"median {METRIC}** (requests per call; higher is better" in report
