"""The verdict logic on SYNTHETIC data: flat vs growing vs noisy vs too little data."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fixtures.synthetic_run import (
    SyntheticSpec,
    leave_one_closed_select_repetition,
    make_synthetic_run,
    synthetic_run_in_memory,
)

from bench.analyse.churn import CHURN_RULES
from bench.analyse.claim3 import judge_flatness
from bench.analyse.crossover import CROSSOVER_RULES
from bench.analyse.rules import RULES
from bench.analyse.slopes import METHOD_MICRO, SlopeFit, growth_fit
from bench.analyse.verdict import (
    TOLERANCE_REL_INCREASE,
    classify_fit,
    compute_verdict,
    format_verdict_table,
    write_verdict,
)
from bench.present.report import render_report

# epoll's wait cost is 1.0 us at 0 descriptors in the fixture: +50% over 0-4000.
GROWS_HALF = 0.5 / 4000
WAIT = "in-server wait call (CPU time)"
THROUGHPUT = "closed-loop wall time per request (1/throughput)"


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
    # Every backend has the same all-active cost; 3 repetitions at ~4% noise per
    # throughput cannot show every cell within +-10%, so the regime may stay open.
    assert regimes["idle-heavy"] == "SUPPORTED"
    assert regimes["all-active"] in ("NOT SUPPORTED", "INCONCLUSIVE")
    assert "1000 idle" in claims["2"]["conditions"]


def test_a_quiet_machine_shows_all_active_equivalence() -> None:
    claims = _claims(SyntheticSpec(noise=0.01, repetitions=5, include_micro=False))
    regimes = {r["regime"]: r["status"] for r in claims["2"]["regimes"]}
    assert regimes == {"idle-heavy": "SUPPORTED", "all-active": "NOT SUPPORTED"}
    active = claims["2"]["evidence"]["regimes"][1]["comparisons"]
    assert {c["class"] for c in active if c["judged"]} == {"EQUIVALENT"}


def test_claim_3_judges_and_shows_every_metric() -> None:
    claim3 = _claims(SyntheticSpec())["3"]
    metrics = _metric_statuses(claim3)
    assert set(metrics) == {WAIT, "server CPU per request", "micro wait call", THROUGHPUT}
    for m in claim3["evidence"]["metrics"]:
        for backend in ("select", "poll", "epoll"):
            fit = m["backends"][backend]
            assert fit["class"] in ("flat", "growing")
            assert fit["method"] and "slope_per_1000_ci_low" in fit
    assert [d["metric"] for d in claim3["decided_by"]] == list(metrics)


def test_epoll_growing_half_across_the_range_is_not_supported() -> None:
    for seed in (7, 8, 9):
        claim3 = _claims(SyntheticSpec(epoll_slope_us_per_fd=GROWS_HALF, seed=seed))["3"]
        assert claim3["status"] == "NOT SUPPORTED"
        assert _metric_statuses(claim3)[WAIT] == "NOT SUPPORTED"
        assert "epoll grows" in claim3["reason"]
        decided = {d["metric"] for d in claim3["decided_by"]}
        assert WAIT in decided and "micro wait call" in decided
        epoll = claim3["evidence"]["metrics"][0]["backends"]["epoll"]
        assert epoll["projected_rel_increase_ci_low"] > TOLERANCE_REL_INCREASE


def test_one_growing_metric_refutes_even_when_another_is_flat() -> None:
    # The micro benchmark stays flat here (own noise, made flat below); the wait call grows.
    run = synthetic_run_in_memory(SyntheticSpec(epoll_slope_us_per_fd=GROWS_HALF))
    micro = run.micro.copy()
    flat = (micro["mechanism"] == "epoll") & (micro["ready"] == "one")
    micro.loc[flat, "median_us"] = 1.0
    claim3 = compute_verdict(replace(run, micro=micro))["claims"][2]
    statuses = _metric_statuses(claim3)
    assert statuses["micro wait call"] == "SUPPORTED" and statuses[WAIT] == "NOT SUPPORTED"
    assert claim3["status"] == "NOT SUPPORTED"


def test_few_noisy_repetitions_cannot_tell_so_claim_3_is_inconclusive() -> None:
    for seed in (7, 8, 9):
        spec = SyntheticSpec(noise=0.4, micro_noise=0.4, repetitions=3, seed=seed)
        claim3 = _claims(spec)["3"]
        assert claim3["status"] == "INCONCLUSIVE"
        assert claim3["decided_by"] == []
        assert "straddles" in claim3["reason"]


def test_a_gentle_epoll_slope_inside_the_tolerance_is_still_flat() -> None:
    # 1.0 us at 0 fds + 0.00002 us/fd -> +8% over 4000 fds, under the 20% tolerance.
    claims = _claims(SyntheticSpec(epoll_slope_us_per_fd=0.00002, include_micro=False))
    assert _metric_statuses(claims["3"])[WAIT] == "SUPPORTED"


def _fit(rel_lo: float, rel_hi: float, slope: float = 0.0) -> SlopeFit:
    return SlopeFit(
        slope, slope - 1e-4, slope + 1e-4, 12, 4, 3, 0.0, 4000.0, 10.0, "test",
        rel_slope=(rel_lo + rel_hi) / 2 / 4000, rel_slope_ci_low=rel_lo / 4000,
        rel_slope_ci_high=rel_hi / 4000, n_blocks=3, df=8,
    )  # fmt: skip


def test_no_relative_rule_promotes_or_demotes_epoll() -> None:
    # epoll's own growth straddles +20%: however much steeper select and poll are, unclear.
    growing = {"select": _fit(30.0, 40.0, 0.4), "poll": _fit(20.0, 30.0, 0.2)}
    noisy_but_tiny = judge_flatness(
        "m", {"epoll": _fit(-0.1, 0.3, 0.0001), **growing}, True, "us", ""
    )
    assert noisy_but_tiny["status"] == "INCONCLUSIVE"
    assert "straddles" in noisy_but_tiny["reason"]
    # The comparison of slopes is still reported, and decides nothing.
    assert "select" in noisy_but_tiny["slope_comparison"]
    flat = judge_flatness("m", {"epoll": _fit(-0.1, 0.1, 0.0001), **growing}, True, "us", "")
    assert flat["status"] == "SUPPORTED"


def test_noisy_synthetic_runs_never_reach_a_wrong_claim_2() -> None:
    # Truth: epoll ~3.4x better when idle-heavy, the same when all active.
    for seed in range(7, 13):
        claims = _claims(SyntheticSpec(noise=0.6, include_micro=False, seed=seed))
        regimes = {r["regime"]: r["status"] for r in claims["2"]["regimes"]}
        assert regimes["idle-heavy"] != "NOT SUPPORTED"
        assert regimes["all-active"] != "SUPPORTED"
        assert claims["2"]["status"] in ("PARTLY SUPPORTED", "INCONCLUSIVE")


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
    claims = {c["id"]: c for c in compute_verdict(replace(run, trials=trials))["claims"]}
    assert claims["3"]["status"] == "INCONCLUSIVE"


def test_select_wall_not_reached_or_exceeded() -> None:
    run = synthetic_run_in_memory(SyntheticSpec(include_micro=False))
    trials = run.trials.copy()
    sel = (trials["scenario"] == "fd-limit") & (trials["backend"] == "select")
    beyond = trials.copy()
    beyond.loc[sel, "connections_served"] = 1500
    beyond.loc[sel, ["connections_rejected", "server_rejected_fd_setsize"]] = 0
    c1 = compute_verdict(replace(run, trials=beyond))["claims"][0]
    assert c1["status"] == "NOT SUPPORTED"
    nofd = trials[~(trials["scenario"] == "fd-limit")]
    assert compute_verdict(replace(run, trials=nofd))["claims"][0]["status"] == "INCONCLUSIVE"


def test_classify_fit_uses_the_stated_tolerance() -> None:
    x = np.repeat([0.0, 1000.0, 2000.0], 3)
    blocks = np.tile([0, 1, 2], 3)
    base = 10.0
    wobble = np.tile([-0.01, 0.0, 0.01], 3)
    flat = growth_fit(x, base + wobble, blocks)
    steep = growth_fit(x, base * (1 + 2 * TOLERANCE_REL_INCREASE * x / 2000) + wobble, blocks)
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
    assert doc["method"]["rules"] == {**RULES, **CROSSOVER_RULES, **CHURN_RULES}
    table = format_verdict_table(doc)
    for claim in doc["claims"]:
        assert claim["status"] in table
    assert "idle-heavy" in table and "all-active" in table


@pytest.mark.parametrize("claim_id", ["1", "2", "3"])
def test_every_claim_states_conditions_and_reason(claim_id: str) -> None:
    claim = _claims(SyntheticSpec(include_micro=False))[claim_id]
    assert claim["conditions"] and claim["reason"] and claim["claim"]


def _intervals(doc: Any, path: str = "") -> list[tuple[str, dict]]:
    """Every dict in the verdict that holds an interval bound, with where it is."""
    found = []
    if isinstance(doc, dict):
        if any(k.endswith("ci_low") for k in doc):
            found.append((path, doc))
        for k, v in doc.items():
            found += _intervals(v, f"{path}.{k}")
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            found += _intervals(v, f"{path}[{i}]")
    return found


def test_every_interval_in_verdict_and_report_names_its_method(tmp_path: Path) -> None:
    run = make_synthetic_run(tmp_path, SyntheticSpec())
    verdict = compute_verdict(run)
    intervals = _intervals(verdict)
    assert len(intervals) > 20
    for where, d in intervals:
        assert d.get("method"), f"interval without a method at {where}"
    assert "bootstrap" not in json.dumps(verdict["claims"])
    report = render_report(run, verdict)
    assert report.count("Method:") >= 4  # one line per claim-3 metric
    assert "90% interval (decides)" in report and "| method |" in report
    for text in RULES.values():
        assert text in report  # the rules, verbatim


def test_run_warnings_appear_in_the_verdict_and_the_report(tmp_path: Path) -> None:
    warning = "load 1.2 per CPU at start (above 0.5): the machine was not quiet"
    run = make_synthetic_run(tmp_path, SyntheticSpec(extra_warnings=(warning,)))
    verdict = compute_verdict(run)
    assert warning in verdict["warnings"]
    assert warning in format_verdict_table(verdict)
    section = render_report(run, verdict).split("## Verdict", 1)[1].split("## Charts", 1)[0]
    assert warning in section


def test_throughput_falling_for_epoll_is_explained() -> None:
    run = synthetic_run_in_memory(SyntheticSpec(epoll_slope_us_per_fd=GROWS_HALF * 40))
    claim3 = compute_verdict(run)["claims"][2]
    thr = next(m for m in claim3["evidence"]["metrics"] if m["metric"] == THROUGHPUT)
    assert thr["status"] == "NOT SUPPORTED"
    assert "inside the wait call" in thr["explanation"]


def test_micro_scatter_between_benchmarks_is_not_read_as_a_slope() -> None:
    # Shape seen on a loaded machine: epoll 1.67, 1.27, 1.23, 1.81 us with tiny
    # per-benchmark errors. The scatter around the line must widen the interval.
    # A table from before the processes (one row per count): the one-block fit, said so.
    run = synthetic_run_in_memory(SyntheticSpec(micro_processes=0))
    micro = run.micro[run.micro["mechanism"] != "epoll"].copy()
    epoll = run.micro[(run.micro["mechanism"] == "epoll")].copy()
    epoll = epoll[epoll["n_registered"].isin([16, 256, 1000, 4000])]
    one = epoll["ready"] == "one"
    epoll.loc[one, "median_us"] = [1.67, 1.27, 1.23, 1.81]
    epoll.loc[one, "iqr_us"] = 0.05
    epoll.loc[one, "rounds"] = 10_000
    run = replace(run, micro=pd.concat([micro, epoll], ignore_index=True))
    claim3 = {c["id"]: c for c in compute_verdict(run)["claims"]}["3"]
    assert _metric_statuses(claim3)["micro wait call"] == "INCONCLUSIVE"
    epoll_fit = claim3["evidence"]["metrics"][2]["backends"]["epoll"]
    assert epoll_fit["projected_rel_increase_ci_high"] > TOLERANCE_REL_INCREASE
    assert math.isfinite(epoll_fit["slope_per_1000"])
    assert epoll_fit["method"] == METHOD_MICRO and epoll_fit["n_blocks"] == 1


def _haproxy_select_fd_limit(served: int) -> pd.DataFrame:
    row = {
        "scenario": "fd-limit", "backend": "haproxy-select", "status": "ok",
        "connections_requested": 19000, "connections_served": served,
        "server_rejected_fd_setsize": 0, "connections_rejected": 0,
        "client_observation": json.dumps({"ok": served, "timeout": 4097}),
        "idle_connections": 0, "active_connections": 0,
    }  # fmt: skip
    return pd.DataFrame([row])


def test_claim1_weighs_a_connection_by_the_descriptors_its_server_counts() -> None:
    # HAProxy counts two descriptors per client: 499 clients are 998 descriptors, at the
    # wall (SUPPORTED); 600 clients would be 1,200, past it (NOT SUPPORTED); 300 clients
    # (600 descriptors) stopped well below it (INCONCLUSIVE).
    from bench.analyse.claim1 import claim1_family
    from bench.analyse.families import roles_of
    from servers import registry

    roles = roles_of(registry.FAMILY_EXTERNAL)
    assert roles.comparators and roles.comparators[0] == "haproxy-select"
    statuses = {
        served: claim1_family(_haproxy_select_fd_limit(served), roles)["status"]
        for served in (499, 600, 300)
    }
    assert statuses == {499: "SUPPORTED", 600: "NOT SUPPORTED", 300: "INCONCLUSIVE"}
    block = claim1_family(_haproxy_select_fd_limit(499), roles)
    assert block["evidence"]["descriptors_per_client"] == 2
    assert "998" in block["reason"]


def _idle_heavy(trials: pd.DataFrame, run: Any) -> dict:
    claims = {c["id"]: c for c in compute_verdict(replace(run, trials=trials))["claims"]}
    return next(r for r in claims["2"]["evidence"]["regimes"] if r["regime"] == "idle-heavy")


def test_idle_heavy_moves_to_open_loop_when_closed_loop_keeps_one_repetition() -> None:
    run = synthetic_run_in_memory(SyntheticSpec(include_micro=False))
    regime = _idle_heavy(leave_one_closed_select_repetition(run.trials), run)
    by_other = {c["backend"]: c for c in regime["comparisons"]}
    assert by_other["select"]["loop"] == "open" and by_other["poll"]["loop"] == "closed"
    assert "fewer than 2" not in by_other["select"]["class_reason"]
    assert regime["status"] == "SUPPORTED"


def test_the_open_loop_fallback_can_refute_as_well() -> None:
    # The same move, where the open-loop cell shows select as cheap as epoll: the
    # comparison it lands on is not 'epoll better', so the regime is not supported.
    run = synthetic_run_in_memory(SyntheticSpec(include_micro=False, noise=0.01))
    trials = leave_one_closed_select_repetition(run.trials)
    epoll_cpu = trials[
        (trials["scenario"] == "idle-scaling") & (trials["backend"] == "epoll")
        & (trials["mode"] == "open") & (trials["idle_connections"] == 1000)
    ].set_index("repetition")["server_cpu_us_per_req"]  # fmt: skip
    cell = (
        (trials["scenario"] == "idle-scaling") & (trials["backend"] == "select")
        & (trials["mode"] == "open") & (trials["idle_connections"] == 1000)
    )  # fmt: skip
    trials.loc[cell, "server_cpu_us_per_req"] = trials.loc[cell, "repetition"].map(epoll_cpu)
    regime = _idle_heavy(trials, run)
    select = next(c for c in regime["comparisons"] if c["backend"] == "select")
    assert select["loop"] == "open" and select["class"] == "EQUIVALENT"
    assert regime["status"] == "INCONCLUSIVE"  # decided both ways: poll better, select not


def test_with_no_loop_holding_two_repetitions_the_closed_cell_stands_and_says_so() -> None:
    run = synthetic_run_in_memory(SyntheticSpec(include_micro=False))
    trials = leave_one_closed_select_repetition(run.trials)
    open_cell = (
        (trials["scenario"] == "idle-scaling") & (trials["backend"] == "select")
        & (trials["mode"] == "open") & (trials["repetition"] > 0)
    )  # fmt: skip
    trials.loc[open_cell, "flagged"] = True
    select = next(c for c in _idle_heavy(trials, run)["comparisons"] if c["backend"] == "select")
    assert select["loop"] == "closed"
    assert "fewer than 2 usable repetitions" in select["class_reason"]
