"""Steal, client-bound and send-lag trials: read from the trial table, or said to be unknown."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
from fixtures.synthetic_run import SyntheticSpec, synthetic_run_in_memory

from bench.analyse.flags import (
    client_bound,
    data_quality,
    leave_out_client_bound,
    send_lag_material,
    steal_fault,
)
from bench.analyse.rules import (
    CLIENT_BOUND_BUSY_FRACTION,
    SEND_LAG_P99_FRACTION,
    STEAL_FRACTION_MAX,
)
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


def test_client_bound_trials_stay_in_and_only_the_sensitivity_leaves_them_out() -> None:
    run = synthetic_run_in_memory(SPEC)
    trials = run.trials
    busy = pd.Series(0.99, index=trials.index)
    slow = (trials["backend"] == "epoll") & (trials["scenario"] == "idle-scaling")
    busy[slow] = CLIENT_BOUND_BUSY_FRACTION - 0.2  # epoll outpaces its client
    trials = _with(trials, server_busy_fraction=busy)
    mask = client_bound(trials)
    assert mask.sum() == (slow & (trials["mode"] == "closed")).sum()  # open loop is not judged
    assert len(usable_trials(trials)) == len(trials)  # no fault: every trial counts
    summary = summarise_cells(trials, "throughput_rps")
    assert not summary["flagged_only"].any() and (summary["n_flagged"] == 0).all()
    left_out = leave_out_client_bound(trials)
    assert left_out.loc[mask, "flagged"].all() and not left_out.loc[~mask, "flagged"].any()
    assert left_out.loc[mask, "flag_reasons"].str.contains("client-bound").all()
    verdict = compute_verdict(replace(run, trials=trials))
    assert verdict["data_quality"]["client_bound"]["trials"] == int(mask.sum())
    assert verdict["method"]["trials_client_bound"] == int(mask.sum())
    assert verdict["method"]["trials_excluded"] == 0
    # Idle-heavy stays in closed loop, judged on CPU per request with the client-bound trials.
    idle = verdict["claims"][1]["evidence"]["regimes"][0]
    assert {c["loop"] for c in idle["comparisons"]} == {"closed"}
    assert idle["status"] == "SUPPORTED"
    assert verdict["sensitivity"]["trials_client_bound"] == int(mask.sum())


def test_steal_over_its_bound_is_a_fault_and_unknown_steal_is_said() -> None:
    run = synthetic_run_in_memory(SPEC)
    quality = data_quality(run.trials)
    assert quality["steal"]["recorded"] is False
    assert "did not record steal_fraction" in quality["steal"]["note"]
    steal = pd.Series(0.0, index=run.trials.index)
    steal.iloc[:3] = STEAL_FRACTION_MAX + 0.01
    trials = _with(run.trials, steal_fraction=steal)
    assert steal_fault(trials).sum() == 3
    assert len(usable_trials(trials)) == len(trials) - 3


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
