"""The verdict logic on SYNTHETIC data: flat vs linear vs noisy vs too little data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures.synthetic_run import SyntheticSpec, synthetic_run_in_memory

from bench.analyse.claim3 import judge_flatness
from bench.analyse.stats import SlopeFit, bootstrap_slope
from bench.analyse.verdict import (
    TOLERANCE_REL_INCREASE,
    classify_fit,
    compute_verdict,
    format_verdict_table,
    write_verdict,
)


def _claims(spec: SyntheticSpec, tmp_path: Path | None = None) -> dict[str, dict]:
    run = synthetic_run_in_memory(spec, path=tmp_path or Path("/nonexistent"))
    return {c["id"]: c for c in compute_verdict(run)["claims"]}


def _metric_statuses(claim3: dict) -> dict[str, str]:
    return {m["metric"]: m["status"] for m in claim3["evidence"]["metrics"]}


def test_classic_picture_supports_claims_1_and_3_and_claim_2_only_when_idle_heavy() -> None:
    claims = _claims(SyntheticSpec())
    assert claims["1"]["status"] == "SUPPORTED"
    assert claims["3"]["status"] == "SUPPORTED"
    assert set(_metric_statuses(claims["3"]).values()) == {"SUPPORTED"}
    assert claims["2"]["status"] == "PARTLY SUPPORTED"
    regimes = {r["regime"]: r["status"] for r in claims["2"]["regimes"]}
    assert regimes == {"idle-heavy": "SUPPORTED", "all-active": "NOT SUPPORTED"}
    assert "1000 idle" in claims["2"]["conditions"]


def test_epoll_made_to_slope_is_not_supported() -> None:
    claims = _claims(SyntheticSpec(epoll_slope_us_per_fd=0.05))
    assert claims["3"]["status"] == "NOT SUPPORTED"
    assert "epoll grows" in claims["3"]["reason"]


def test_a_gentle_epoll_slope_inside_the_tolerance_is_still_flat() -> None:
    # 1.0 us at 0 fds + 0.00002 us/fd -> +8% over 4000 fds, under the 20% tolerance.
    claims = _claims(SyntheticSpec(epoll_slope_us_per_fd=0.00002, include_micro=False))
    assert _metric_statuses(claims["3"])["in-server wait call (CPU time)"] == "SUPPORTED"


def _fit(slope: float, lo: float, hi: float, baseline: float = 10.0) -> SlopeFit:
    return SlopeFit(slope, lo, hi, 12, 4, 3, 0.0, 4000.0, baseline, "test")


def test_noisy_epoll_is_inconclusive_unless_surely_far_below_select_and_poll() -> None:
    # epoll's own interval straddles +20% (noisy) in both cases.
    growing = {"select": _fit(0.4, 0.3, 0.5), "poll": _fit(0.2, 0.15, 0.25)}
    noisy_but_tiny = judge_flatness(
        "m", {"epoll": _fit(0.0, -0.002, 0.004), **growing}, True, "us", ""
    )
    assert noisy_but_tiny["status"] == "SUPPORTED"
    assert "under 5% of poll's" in noisy_but_tiny["reason"]
    # Upper end 0.05 us/fd is a third of poll's lower end: not surely negligible.
    noisy_and_wide = judge_flatness(
        "m", {"epoll": _fit(0.0, -0.05, 0.05), **growing}, True, "us", ""
    )
    assert noisy_and_wide["status"] == "INCONCLUSIVE"
    assert "noisy" in noisy_and_wide["reason"]


def test_noisy_synthetic_run_is_inconclusive_on_claim_2() -> None:
    claims = _claims(SyntheticSpec(noise=0.6, include_micro=False))
    assert claims["2"]["status"] == "INCONCLUSIVE"


def test_too_few_descriptor_counts_is_inconclusive() -> None:
    claims = _claims(SyntheticSpec(idle_levels=(0, 1000), include_micro=False))
    assert claims["3"]["status"] == "INCONCLUSIVE"
    assert "need at least 3" in claims["3"]["reason"]


def test_one_repetition_is_inconclusive() -> None:
    claims = _claims(SyntheticSpec(repetitions=1, include_micro=False))
    assert claims["3"]["status"] == "INCONCLUSIVE"
    assert "repetition" in claims["3"]["reason"]
    assert claims["2"]["status"] == "INCONCLUSIVE"


def test_select_not_growing_makes_flat_epoll_inconclusive() -> None:
    # With only tiny descriptor counts nobody grows: the sweep cannot tell them apart.
    claims = _claims(SyntheticSpec(idle_levels=(0, 1, 2), include_micro=False))
    assert claims["3"]["status"] == "INCONCLUSIVE"
    assert "did not show growth" in claims["3"]["reason"]


def test_flagged_trials_are_left_out_of_fits() -> None:
    spec = SyntheticSpec(epoll_slope_us_per_fd=0.05, include_micro=False)
    run = synthetic_run_in_memory(spec)
    trials = run.trials.copy()
    # Flag every epoll idle-scaling trial: no usable epoll data remains.
    mask = (trials["backend"] == "epoll") & (trials["scenario"] == "idle-scaling")
    trials.loc[mask, "flagged"] = True
    from dataclasses import replace

    claims = {c["id"]: c for c in compute_verdict(replace(run, trials=trials))["claims"]}
    assert claims["3"]["status"] == "INCONCLUSIVE"


def test_select_wall_not_reached_or_exceeded() -> None:
    run = synthetic_run_in_memory(SyntheticSpec(include_micro=False))
    trials = run.trials.copy()
    sel = (trials["scenario"] == "fd-limit") & (trials["backend"] == "select")
    from dataclasses import replace

    beyond = trials.copy()
    beyond.loc[sel, "connections_served"] = 1500
    beyond.loc[sel, ["connections_rejected", "server_rejected_fd_setsize"]] = 0
    c1 = compute_verdict(replace(run, trials=beyond))["claims"][0]
    assert c1["status"] == "NOT SUPPORTED"
    nofd = trials[~(trials["scenario"] == "fd-limit")]
    assert compute_verdict(replace(run, trials=nofd))["claims"][0]["status"] == "INCONCLUSIVE"


def test_classify_fit_uses_the_stated_tolerance() -> None:
    x = np.repeat([0.0, 1000.0, 2000.0], 3)
    base = 10.0
    flat = bootstrap_slope(x, base + np.tile([-0.01, 0.0, 0.01], 3))
    steep = bootstrap_slope(
        x, base * (1 + 2 * TOLERANCE_REL_INCREASE * x / 2000) + np.tile([-0.01, 0, 0.01], 3)
    )
    assert classify_fit(flat, need_reps=True)[0] == "flat"
    assert classify_fit(steep, need_reps=True)[0] == "growing"


def test_verdict_is_reproducible_written_and_printable(tmp_path: Path) -> None:
    run = synthetic_run_in_memory(SyntheticSpec(), path=tmp_path)
    v1, v2 = compute_verdict(run), compute_verdict(run)
    for v in (v1, v2):
        v.pop("generated_utc")
    assert v1 == v2
    path = write_verdict(run, v1)
    doc = json.loads(path.read_text())  # strict JSON: NaN written as null
    assert [c["id"] for c in doc["claims"]] == ["1", "2", "3"]
    table = format_verdict_table(doc)
    for status in ("SUPPORTED", "PARTLY SUPPORTED", "NOT SUPPORTED"):
        assert status in table
    assert "idle-heavy" in table and "all-active" in table


@pytest.mark.parametrize("claim_id", ["1", "2", "3"])
def test_every_claim_states_conditions_and_reason(claim_id: str) -> None:
    claim = _claims(SyntheticSpec(include_micro=False))[claim_id]
    assert claim["conditions"] and claim["reason"] and claim["claim"]


def test_micro_scatter_between_benchmarks_is_not_read_as_a_slope() -> None:
    # Shape seen on a loaded machine: epoll 1.67, 1.27, 1.23, 1.81 us with tiny
    # per-benchmark errors. The drift between benchmarks must widen the interval.
    from dataclasses import replace

    run = synthetic_run_in_memory(SyntheticSpec())
    micro = run.micro[run.micro["mechanism"] != "epoll"].copy()
    epoll = run.micro[(run.micro["mechanism"] == "epoll")].copy()
    epoll = epoll[epoll["n_registered"].isin([16, 256, 1000, 4000])]
    one = epoll["ready"] == "one"
    epoll.loc[one, "median_us"] = [1.67, 1.27, 1.23, 1.81]
    epoll.loc[one, "iqr_us"] = 0.05
    epoll.loc[one, "rounds"] = 10_000
    run = replace(run, micro=pd.concat([micro, epoll], ignore_index=True))
    claim3 = {c["id"]: c for c in compute_verdict(run)["claims"]}["3"]
    metrics = _metric_statuses(claim3)
    # Not read as epoll growing: either too noisy to say, or flat next to poll's slope.
    assert metrics["micro wait call"] in ("INCONCLUSIVE", "SUPPORTED")
    if metrics["micro wait call"] == "SUPPORTED":
        assert "under 5%" in claim3["reason"]
