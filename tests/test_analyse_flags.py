"""Client-bound and send-lag trials: read from the trial table, or said to be unknown."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
from fixtures.synthetic_run import SyntheticSpec, synthetic_run_in_memory

from bench.analyse.flags import client_bound, data_quality, send_lag_material
from bench.analyse.rules import CLIENT_BOUND_BUSY_FRACTION, SEND_LAG_P99_FRACTION
from bench.analyse.stats import summarise_cells, usable_latency_trials, usable_trials
from bench.analyse.verdict import compute_verdict

SPEC = SyntheticSpec(include_micro=False)


def _with(trials: pd.DataFrame, **columns: object) -> pd.DataFrame:
    return trials.assign(**columns)


def test_old_runs_without_the_columns_say_so_and_lose_nothing() -> None:
    run = synthetic_run_in_memory(SPEC)
    trials = run.trials.drop(
        columns=[c for c in ("server_busy_fraction", "send_lag_p99_us") if c in run.trials]
    )
    quality = data_quality(trials)
    assert quality["client_bound"]["recorded"] is False
    assert "did not record server_busy_fraction" in quality["client_bound"]["note"]
    assert quality["send_lag"]["recorded"] is False
    assert len(usable_trials(trials)) == len(trials)
    verdict = compute_verdict(replace(run, trials=trials))
    assert verdict["data_quality"]["send_lag"]["recorded"] is False


def test_closed_loop_trials_of_a_server_under_90_percent_busy_are_left_out() -> None:
    run = synthetic_run_in_memory(SPEC)
    trials = run.trials
    busy = pd.Series(0.99, index=trials.index)
    slow = (trials["backend"] == "epoll") & (trials["scenario"] == "idle-scaling")
    busy[slow] = CLIENT_BOUND_BUSY_FRACTION - 0.2  # epoll outpaces its client
    trials = _with(trials, server_busy_fraction=busy)
    mask = client_bound(trials)
    assert mask.sum() == (slow & (trials["mode"] == "closed")).sum()  # open loop is not judged
    assert not mask[usable_trials(trials).index].any()
    summary = summarise_cells(trials, "throughput_rps")
    epoll_closed = summary[
        (summary["backend"] == "epoll") & (summary["scenario"] == "idle-scaling")
        & (summary["mode"] == "closed")
    ]  # fmt: skip
    assert epoll_closed["flagged_only"].all()  # drawn hollow in charts
    verdict = compute_verdict(replace(run, trials=trials))
    assert verdict["data_quality"]["client_bound"]["trials"] == int(mask.sum())
    assert verdict["method"]["trials_client_bound"] == int(mask.sum())
    # Idle-heavy then falls back to open loop (CPU per request at the same rate).
    idle = verdict["claims"][1]["evidence"]["regimes"][0]
    assert {c["loop"] for c in idle["comparisons"]} == {"open"}
    assert idle["status"] == "SUPPORTED"


def test_open_loop_send_lag_over_a_quarter_of_p99_leaves_out_only_the_latency() -> None:
    run = synthetic_run_in_memory(SPEC)
    trials = run.trials
    lag = trials["latency_p99_us"] * (SEND_LAG_P99_FRACTION / 2)
    late = (trials["backend"] == "poll") & (trials["idle_connections"] == 500)
    lag[late] = trials["latency_p99_us"][late] * (SEND_LAG_P99_FRACTION + 0.1)
    trials = _with(trials, send_lag_p99_us=lag)
    mask = send_lag_material(trials)
    assert mask.sum() == (late & (trials["mode"] == "open")).sum() > 0
    quality = data_quality(trials)
    assert quality["send_lag"]["recorded"] and quality["send_lag"]["trials"] == int(mask.sum())
    # The server's CPU per request and throughput stay usable; the latency does not.
    assert len(usable_trials(trials)) == len(trials)
    assert len(usable_latency_trials(trials)) == len(trials) - int(mask.sum())
