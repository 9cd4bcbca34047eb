"""The load result's one owner (LoadResult), its versions, the workers' typed reports, and
the one rate-shortfall rule. No server: documents come from a fixture or from synthetic
worker reports merged as the parent merges them."""

from __future__ import annotations

import dataclasses
import json
import pickle
import random
import socket
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

from bench.measure.columns import flag_reasons, load_columns
from bench.measure.trial import Trial
from loadgen import (
    RATE_SHORTFALL_RATIO,
    SCHEMA_VERSION,
    LoadConfig,
    LoadResult,
    ResultFormatError,
    UnknownResultVersion,
    WorkerFailed,
    rate_shortfall,
)
from loadgen import histogram as hdr
from loadgen.merge import merge_results
from loadgen.report import ConnectInfo, CpuUsage, SeriesInterval, WorkerReport
from loadgen.result import MIGRATIONS, migrate
from loadgen.result_parts import PHASE_NAMES, Phases
from loadgen.run import WorkerPool

# A version-1 document as the code before version 2 wrote it (run_load, open loop, 2 workers).
V1_DOC: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "loadresult_v1.json").read_text()
)
# Keys version 1 gained after it was first written; older version-1 documents lack them.
ADDED_TO_VERSION_1 = (
    "release_timeouts",
    "send_lag_us",
    "histogram_send_lag",
    "reconnects",
    "reconnects_measured",
    "reconnect_rate_per_s",
)


def _report(
    worker: int, latencies_ns: list[int], *, release: str = "parent", core: str = "python",
    polled_s: float = 0.0,
) -> WorkerReport:  # fmt: skip
    hist = hdr.new_histogram()
    hdr.record_ns((hist,), latencies_ns)
    blob = hdr.encode(hist)
    lag = hdr.new_histogram()
    hdr.record_ns((lag,), [1_000] * len(latencies_ns), lowest_us=0)
    return WorkerReport(
        worker=worker, pid=1000 + worker, cpu=worker, idle_requested=2, idle_established=2,
        idle_alive_at_end=2, active_requested=1, active_alive_at_end=1,
        requests=len(latencies_ns), requests_sent=len(latencies_ns), connections_opened=3,
        reconnects=0, reconnects_measured=0, run_connect_errors={"EMFILE": worker},
        warmup_requests=5, drain_requests=0, requests_total=len(latencies_ns) + 5,
        unanswered_at_end=0, errors={"timeout": worker}, errors_measured=worker,
        error_samples=(f"timeout: w{worker}",) * worker, latency_clamped=0,
        hist_corrected=hdr.encode(hist), hist_uncorrected=hdr.encode(hist),
        hist_send_lag=hdr.encode(lag),
        series={0: SeriesInterval(requests=len(latencies_ns), errors=worker, hist=blob)},
        phase_ns={"measure_end": 5}, rss_bytes_after_connect=1 << 20, rss_bytes_at_end=1 << 21,
        release=release, hold_s=0.01, interrupted=False, core=core, polled_s=polled_s,
    )  # fmt: skip


def _connected(worker: int) -> ConnectInfo:
    return ConnectInfo(
        worker=worker, pid=1000 + worker, idle_requested=2, idle_established=2,
        active_requested=1, active_established=1, connect_errors={"ECONNREFUSED": 0},
        connect_duration_s=0.001 * (worker + 1), rss_bytes_after_connect=1 << 20,
        interrupted=False,
    )  # fmt: skip


def _merged(rate_rps: float, sent_per_worker: int = 100, **kw: Any) -> LoadResult:
    """Two synthetic workers, open loop over a 1 s window, merged as loadgen.run does."""
    rng = random.Random(3)
    cfg = LoadConfig(port=80, active_connections=2, idle_connections=4, mode="open",
                     rate_rps=rate_rps, measure_s=1.0, workers=2)  # fmt: skip
    reports = [
        _report(w, [int(rng.lognormvariate(11, 0.5)) for _ in range(sent_per_worker)], **kw)
        for w in range(2)
    ]
    return merge_results(
        cfg, target_address="127.0.0.1", sources=(), connected=[_connected(0), _connected(1)],
        reports=reports, cpu={0: CpuUsage(0.2, 0.1), 1: CpuUsage(0.5, 0.45)},
        phases=Phases(measure_start=1.0, measure_end=2.0), measured_duration_s=1.0,
        partial=False, interrupted=False,
    )  # fmt: skip


def test_to_dict_and_from_dict_round_trip_through_json() -> None:
    result = _merged(rate_rps=200.0)
    doc = result.to_dict()
    assert doc["schema_version"] == SCHEMA_VERSION == 5
    again = LoadResult.from_dict(json.loads(json.dumps(doc)))
    assert again == result
    assert again.to_dict() == doc


def test_merge_sums_the_typed_worker_reports() -> None:
    result = _merged(rate_rps=200.0)
    assert result.requests == result.requests_sent == 200
    assert result.requests_total == 210 and result.warmup_requests == 10
    assert result.errors["timeout"] == 1 == result.errors_total
    assert result.connections.connect_errors["EMFILE"] == 1  # a connect that failed in the run
    assert result.connections.established == 6 and result.connections.connections_opened == 6
    assert result.latency_corrected.count == 200
    assert hdr.decode(result.histogram_corrected or "").get_total_count() == 200
    assert result.send_lag_us.count == 200 and result.send_lag_us.p50 == 1
    assert [w.busy_fraction for w in result.workers] == [0.3, 0.95]
    assert result.saturated is True and result.max_busy_fraction == 0.95
    assert result.loadgen_cpu_us_per_req == round(1.25e6 / 200, 3)
    assert [w.connect_duration_s for w in result.workers] == [0.001, 0.002]
    assert result.timeseries[0].requests == 200 and result.timeseries[0].errors == 1
    assert result.phases.connect_start is None and result.phases.measure_end == 2.0


def test_a_release_timeout_is_counted_from_the_reports() -> None:
    assert _merged(rate_rps=200.0, release="timeout").release_timeouts == 2
    assert _merged(rate_rps=200.0).release_timeouts == 0


def test_worker_messages_are_typed_and_survive_pickling() -> None:
    report = _report(1, [50_000, 60_000])
    assert pickle.loads(pickle.dumps(report)) == report
    assert pickle.loads(pickle.dumps(_connected(0))) == _connected(0)


def test_collect_refuses_a_report_of_another_type() -> None:
    """A worker from another loadgen version (still sending a dict) is named, not merged."""
    parent_end, child_end = socket.socketpair()
    pool = WorkerPool()
    with Connection(parent_end.detach()) as parent, Connection(child_end.detach()) as child:
        pool.conns.append(parent)
        child.send(("result", {"worker": 0, "requests": 3}))
        with pytest.raises(WorkerFailed, match=r"sent a dict .* not a WorkerReport.*same one"):
            pool.collect("result", WorkerReport, deadline=float("inf"))
        child.send(("result", _report(0, [1_000])))
        assert pool.collect("result", WorkerReport, deadline=float("inf"))[0].requests == 1


def test_a_version_1_document_reads_through_the_migration() -> None:
    assert V1_DOC["schema_version"] == 1
    result = LoadResult.from_dict(V1_DOC)
    # Every key version 1 wrote reads back with its value: same numbers.
    doc = result.to_dict()
    for key, value in V1_DOC.items():
        if key == "schema_version":
            continue
        if key == "workers":  # version 3 added workers[].core, version 4 polled_s
            value = [{**w, "core": "python", "polled_s": 0.0} for w in value]
        assert doc[key] == value, key
    assert doc["placement"] is None
    assert doc["loadgen_core"] == "python"
    assert result.requests == V1_DOC["requests"] > 0
    assert result.achieved_rate_ratio == V1_DOC["achieved_rate_ratio"]
    assert result.rate_shortfall is V1_DOC["rate_shortfall"]


def test_an_early_version_1_document_gets_the_late_keys_explicitly() -> None:
    early = {k: v for k, v in V1_DOC.items() if k not in ADDED_TO_VERSION_1}
    early["workers"] = [
        {k: v for k, v in w.items() if k not in ("release", "hold_s")} for w in V1_DOC["workers"]
    ]
    early["phases"] = {k: v for k, v in V1_DOC["phases"].items() if not k.startswith("connect")}
    early["config"] = {
        **{k: v for k, v in V1_DOC["config"].items() if k != "measure_s"},
        "duration_s": V1_DOC["config"]["measure_s"],
    }
    result = LoadResult.from_dict(early)
    assert result.release_timeouts == 0
    assert result.send_lag_us.count == 0 and result.send_lag_us.p99 is None
    assert result.histogram_send_lag is None
    assert result.reconnects == result.reconnects_measured == 0
    assert result.reconnect_rate_per_s is None
    assert {(w.release, w.hold_s) for w in result.workers} == {(None, None)}
    assert result.phases.connect_start is None
    assert result.phases.measure_start == V1_DOC["phases"]["measure_start"]
    assert result.config["measure_s"] == V1_DOC["config"]["measure_s"]
    assert "duration_s" not in result.config
    # Migrated, it is a current document, and reads back the same.
    assert LoadResult.from_dict(result.to_dict()) == result


def test_a_version_2_document_names_the_python_loop() -> None:
    """Version 2 predates the compiled core: its workers ran the Python loop."""
    current = _merged(rate_rps=200.0).to_dict()
    v2 = {k: v for k, v in current.items() if k != "loadgen_core"}
    v2["workers"] = [{k: v for k, v in w.items() if k != "core"} for w in current["workers"]]
    v2["schema_version"] = 2
    result = LoadResult.from_dict(v2)
    assert result.loadgen_core == "python"
    assert {w.core for w in result.workers} == {"python"}
    del v2["workers"]
    with pytest.raises(ResultFormatError, match="'workers'"):
        LoadResult.from_dict(v2)


def test_a_version_3_document_polled_nothing() -> None:
    current = _merged(rate_rps=200.0).to_dict()
    v3 = {**current, "schema_version": 3}
    v3["workers"] = [{k: v for k, v in w.items() if k != "polled_s"} for w in current["workers"]]
    assert {w.polled_s for w in LoadResult.from_dict(v3).workers} == {0.0}


def test_the_time_spent_polling_is_left_out_of_busy_and_cpu_per_request() -> None:
    """Worker 0 used 0.3 s of CPU in the 1 s window and worker 1 0.95 s; polling for
    answers took 0.1 s of each: the work is 0.2 s and 0.85 s."""
    plain, polled = _merged(rate_rps=200.0), _merged(rate_rps=200.0, polled_s=0.0)
    assert plain == polled
    result = _merged(rate_rps=200.0, core="c", polled_s=0.1)
    assert [w.polled_s for w in result.workers] == [0.1, 0.1]
    assert [w.busy_fraction for w in result.workers] == [0.2, 0.85]
    assert [w.busy_fraction for w in plain.workers] == [0.3, 0.95]
    assert result.max_busy_fraction == 0.85 and not result.saturated
    assert plain.max_busy_fraction == 0.95 and plain.saturated
    # CPU per request: (0.2 + 0.85) s of work over 200 requests, against 1.25 s.
    assert result.loadgen_cpu_us_per_req == pytest.approx(1.05e6 / result.requests, abs=1e-3)
    assert plain.loadgen_cpu_us_per_req == pytest.approx(1.25e6 / plain.requests, abs=1e-3)
    # A poll read a little after the parent's CPU read never makes the work negative.
    assert min(w.busy_fraction for w in _merged(rate_rps=200.0, polled_s=0.5).workers) == 0.0


def test_the_loop_is_named_per_worker_and_for_the_run() -> None:
    assert _merged(rate_rps=200.0).loadgen_core == "python"
    assert {w.core for w in _merged(rate_rps=200.0, core="c").workers} == {"c"}
    assert _merged(rate_rps=200.0, core="c").loadgen_core == "c"


def test_every_older_version_has_a_migration_and_the_current_one_needs_none() -> None:
    assert set(MIGRATIONS) == set(range(1, SCHEMA_VERSION))
    current = _merged(rate_rps=200.0).to_dict()
    assert migrate(current) is current
    assert set(migrate(V1_DOC)) == set(current)
    assert set(migrate(V1_DOC)["phases"]) == set(PHASE_NAMES)


def test_a_newer_version_is_refused_naming_cause_and_remedy() -> None:
    doc = {**_merged(rate_rps=200.0).to_dict(), "schema_version": SCHEMA_VERSION + 1}
    with pytest.raises(
        UnknownResultVersion,
        match=rf"schema_version {SCHEMA_VERSION + 1} is newer.*newer selectbench",
    ):
        LoadResult.from_dict(doc)


def test_a_version_2_document_missing_a_key_is_refused() -> None:
    doc = _merged(rate_rps=200.0).to_dict()
    del doc["placement"]
    with pytest.raises(ResultFormatError, match=r"'placement'.*truncated or edited"):
        LoadResult.from_dict(doc)


@pytest.mark.parametrize(
    ("ratio", "short"),
    [(None, False), (RATE_SHORTFALL_RATIO, False), (0.9499, True), (0.5, True), (1.2, False)],
)
def test_rate_shortfall_is_one_rule(ratio: float | None, short: bool) -> None:
    assert rate_shortfall(ratio) is short


OPEN_TRIAL = Trial(
    scenario="idle-scaling", backend="epoll", protocol="http", mode="open",
    idle_connections=4, active_connections=2, rate_rps_requested=200.0, repetition=0,
    order_index=0, position_in_repetition=0, warmup_s=0.1, measure_s=1.0,
)  # fmt: skip


@pytest.mark.parametrize(("rate_rps", "flagged"), [(200.0, False), (210.0, False), (250.0, True)])
def test_loadgen_and_bench_flag_the_same_shortfall(rate_rps: float, flagged: bool) -> None:
    """200 sent per second: 210 requested is 0.952 (not short), 250 is 0.8 (short)."""
    result = _merged(rate_rps=rate_rps)
    assert result.rate_shortfall is flagged
    trial = dataclasses.replace(OPEN_TRIAL, rate_rps_requested=rate_rps)
    row = load_columns(trial, result)
    reasons = flag_reasons(trial, row, result)
    assert any(r.startswith("rate_shortfall(") for r in reasons) is flagged
    if flagged:
        assert f"rate_shortfall({result.achieved_rate_ratio:.2f})" in reasons
