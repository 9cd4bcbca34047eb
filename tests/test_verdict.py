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
from bench.analyse.rules import (
    CLIENT_BOUND_ANALYSIS,
    FALLING,
    FLAT,
    GROWING,
    PRIMARY,
    PRIMARY_ANALYSIS,
    RULES,
    SECONDARY,
    UNCLEAR,
)
from bench.analyse.slopes import METHOD_MICRO, SlopeFit, growth_fit
from bench.analyse.verdict import (
    TOLERANCE_REL_INCREASE,
    classify_fit,
    compute_verdict,
    write_verdict,
)
from bench.present.report import render_report
from bench.present.verdict_table import format_verdict_table

# epoll's wait cost is 1.0 us at 0 descriptors in the fixture: +50% over 0-4000.
GROWS_HALF = 0.5 / 4000
WAIT = "in-server wait call (CPU time)"
THROUGHPUT = "closed-loop wall time per request (1/throughput)"


def _claims(spec: SyntheticSpec, tmp_path: Path | None = None) -> dict[str, dict]:
    run = synthetic_run_in_memory(spec, path=tmp_path or Path("/nonexistent"))
    return {c["id"]: c for c in compute_verdict(run)["claims"]}


def _metric_statuses(claim3: dict) -> dict[str, str]:
    return {m["metric"]: m["status"] for m in claim3["evidence"]["metrics"]}


def _metric(claim3: dict, label: str) -> dict:
    return next(m for m in claim3["evidence"]["metrics"] if m["metric"] == label)


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
    roles = {m["metric"]: m["role"] for m in claim3["evidence"]["metrics"]}
    assert roles == {"micro wait call": PRIMARY, WAIT: PRIMARY,
                     "server CPU per request": SECONDARY, THROUGHPUT: SECONDARY}  # fmt: skip
    # Only the primary metrics decide.
    assert [d["metric"] for d in claim3["decided_by"]] == ["micro wait call", WAIT]


@pytest.mark.slow  # about a second: the full suite runs it, the fast tier does not
def test_epoll_growing_half_across_the_range_is_not_supported() -> None:
    for seed in (7, 8, 9):
        claim3 = _claims(SyntheticSpec(epoll_slope_us_per_fd=GROWS_HALF, seed=seed))["3"]
        assert claim3["status"] == "NOT SUPPORTED"
        assert _metric_statuses(claim3)[WAIT] == "NOT SUPPORTED"
        assert "epoll grows" in claim3["reason"]
        decided = {d["metric"] for d in claim3["decided_by"]}
        assert WAIT in decided and "micro wait call" in decided
        epoll = _metric(claim3, WAIT)["backends"]["epoll"]
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


@pytest.mark.slow  # about a second: the full suite runs it, the fast tier does not
def test_few_noisy_repetitions_cannot_tell_so_claim_3_is_inconclusive() -> None:
    for seed in (7, 8, 9):
        spec = SyntheticSpec(noise=0.4, micro_noise=0.4, repetitions=3, seed=seed)
        claim3 = _claims(spec)["3"]
        assert claim3["status"] == "INCONCLUSIVE"
        assert claim3["decided_by"] == []
        assert "straddles" in claim3["reason"]


def test_a_gentle_epoll_slope_inside_the_tolerance_is_still_flat() -> None:
    # 1.0 us at 0 fds + 0.00002 us/fd -> +8% over 4000 fds, inside the 20% tolerance.
    claims = _claims(SyntheticSpec(epoll_slope_us_per_fd=0.00002, include_micro=False))
    assert _metric_statuses(claims["3"])[WAIT] == "SUPPORTED"


def test_flat_is_two_sided() -> None:
    cases = {
        (-0.10, 0.10): FLAT,  # inside +-20%
        (-0.19, 0.19): FLAT,
        (0.01, 0.19): FLAT,  # shown above 0, but shown inside the margin too
        (0.05, 0.25): GROWING,  # above 0 and not inside the margin
        (0.30, 0.40): GROWING,
        (-0.30, -0.25): FALLING,  # below 0 and not inside: suspect
        (-0.25, -0.01): FALLING,
        (-0.25, 0.10): UNCLEAR,
        (-0.10, 0.30): UNCLEAR,
    }
    for (lo, hi), expected in cases.items():
        assert classify_fit(_fit(lo, hi), need_reps=True)[0] == expected, (lo, hi)


def test_a_falling_epoll_is_not_flat_and_never_supports() -> None:
    growing = {"select": _fit(30.0, 40.0, 0.4), "poll": _fit(20.0, 30.0, 0.2)}
    # The one-sided rule of before would have called this flat (upper end under +20%).
    falling = judge_flatness("m", {"epoll": _fit(-0.45, -0.21, -0.001), **growing}, True, "us", "")
    assert falling["backends"]["epoll"]["class"] == FALLING
    assert falling["status"] == "INCONCLUSIVE" and "suspect" in falling["reason"]
    # Lower end above 0 and not inside +-20%: growing, so it refutes.
    grows = judge_flatness("m", {"epoll": _fit(0.02, 0.24, 0.001), **growing}, True, "us", "")
    assert grows["status"] == "NOT SUPPORTED"


@pytest.mark.slow  # about a second: the full suite runs it, the fast tier does not
def test_claim_3_needs_every_primary_metric_and_says_which_part_is_shown() -> None:
    # The micro benchmark (quiet) shows epoll flat; the servers' wait call (noisy) cannot.
    for seed in (7, 8, 9):
        spec = SyntheticSpec(noise=0.5, micro_noise=0.02, repetitions=3, seed=seed)
        claim3 = _claims(spec)["3"]
        statuses = _metric_statuses(claim3)
        assert statuses["micro wait call"] == "SUPPORTED" and statuses[WAIT] != "SUPPORTED"
        assert claim3["status"] == "INCONCLUSIVE" and claim3["decided_by"] == []
        assert claim3["shown"].startswith("wait call in-process flat; not shown: servers (epoll ")
        assert claim3["reason"].startswith(claim3["shown"])
    # Without micro benchmarks the Python family's in-process part is not shown.
    claim3 = _claims(SyntheticSpec(include_micro=False))["3"]
    assert _metric_statuses(claim3)[WAIT] == "SUPPORTED"
    assert claim3["status"] == "INCONCLUSIVE"
    assert claim3["shown"] == (
        "servers flat; not shown: wait call in-process (micro wait call: this run has no "
        "micro benchmarks)"
    )


def test_secondary_metrics_never_decide_claim_3() -> None:
    # epoll's CPU per request and wall time grow steeply, its wait call stays flat.
    run = synthetic_run_in_memory(SyntheticSpec())
    trials = run.trials.copy()
    rows = (trials["backend"] == "epoll") & (trials["scenario"] == "idle-scaling")
    grow = 1 + trials.loc[rows, "idle_connections"].astype(float) / 4000
    trials.loc[rows, "server_cpu_us_per_req"] *= grow
    trials.loc[rows, "throughput_rps"] /= grow
    claim3 = compute_verdict(replace(run, trials=trials))["claims"][2]
    statuses = _metric_statuses(claim3)
    assert statuses["server CPU per request"] == "NOT SUPPORTED"
    assert statuses[THROUGHPUT] == "NOT SUPPORTED"
    assert claim3["status"] == "SUPPORTED"


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


@pytest.mark.slow  # about a second: the full suite runs it, the fast tier does not
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
    # Every rule text, churn's and crossover's included, comes from bench.analyse.rules.
    assert doc["method"]["rules"] == RULES
    assert CHURN_RULES.items() <= RULES.items() and CROSSOVER_RULES.items() <= RULES.items()
    assert doc["churn"]["rules"] == CHURN_RULES and "2026-12-05" in RULES["history"]
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


@pytest.mark.slow  # a synthetic run, its verdict and report: seconds
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


@pytest.mark.slow  # a synthetic run, its verdict and report: seconds
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
    epoll_fit = _metric(claim3, "micro wait call")["backends"]["epoll"]
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


def test_claim_2_is_judged_on_cpu_per_request_with_throughput_shown() -> None:
    run = synthetic_run_in_memory(SyntheticSpec(include_micro=False))
    regime = _idle_heavy(run.trials, run)
    for c in regime["comparisons"]:
        assert c["loop"] == "closed" and c["metric"] == "server CPU per request"
        assert c["ratio_definition"] == "other's server CPU per request / epoll's"
        assert c["shown"]["throughput"]["recorded"] is True
        assert c["shown"]["machine_cpu_per_request"]["recorded"] is False  # not in the fixture
    trials = run.trials.assign(machine_cpu_us_per_req=run.trials["server_cpu_us_per_req"] * 1.5)
    select = next(c for c in _idle_heavy(trials, run)["comparisons"] if c["backend"] == "select")
    machine = select["shown"]["machine_cpu_per_request"]
    assert machine["recorded"] and machine["ratio"] == pytest.approx(select["decision"]["ratio"])


def test_the_loop_follows_the_plan_not_the_surviving_repetitions() -> None:
    run = synthetic_run_in_memory(SyntheticSpec(include_micro=False))
    # Every closed-loop select trial at 1,000 idle is client-bound: it stays in the verdict,
    # and the cell stays closed loop, because the plan measured it there.
    closed_select = (
        (run.trials["scenario"] == "idle-scaling") & (run.trials["backend"] == "select")
        & (run.trials["mode"] == "closed") & (run.trials["idle_connections"] == 1000)
    )  # fmt: skip
    busy = pd.Series(0.99, index=run.trials.index).mask(closed_select, 0.5)
    trials = run.trials.assign(server_busy_fraction=busy)
    verdict = compute_verdict(replace(run, trials=trials))
    idle = verdict["claims"][1]["evidence"]["regimes"][0]
    select = next(c for c in idle["comparisons"] if c["backend"] == "select")
    assert select["loop"] == "closed" and select["decision"]["n_pairs"] == 3
    assert idle["status"] == "SUPPORTED"
    # Left out in the sensitivity analysis: the cell still stays closed, and cannot judge.
    rows = {r["where"]: r for r in verdict["sensitivity"]["statuses"]}
    row = rows["claim 2, Python family, idle-heavy"]
    assert row[PRIMARY_ANALYSIS] == "SUPPORTED" and row[CLIENT_BOUND_ANALYSIS] == "INCONCLUSIVE"
    # Flagged (a fault) but one: still closed loop, with what the data show.
    regime = _idle_heavy(leave_one_closed_select_repetition(run.trials), run)
    by_other = {c["backend"]: c for c in regime["comparisons"]}
    assert by_other["select"]["loop"] == "closed" and by_other["poll"]["loop"] == "closed"
    # One select repetition has leverage 1 in the model, so no HC3 standard error: the
    # cell falls back, cannot be decided on one repetition, and the reason says so.
    assert "fewer than 2 usable repetitions" in by_other["select"]["class_reason"]
    assert "no HC3 standard error" in by_other["select"]["decision"]["method"]
    assert by_other["select"]["class"] == "INCONCLUSIVE"


def test_a_family_planned_in_open_loop_only_is_judged_in_open_loop() -> None:
    run = synthetic_run_in_memory(SyntheticSpec(include_micro=False))
    trials = run.trials[~((run.trials["scenario"] == "idle-scaling")
                          & (run.trials["mode"] == "closed"))]  # fmt: skip
    regime = _idle_heavy(trials, run)
    assert {c["loop"] for c in regime["comparisons"]} == {"open"}
    assert regime["status"] == "SUPPORTED"
    assert all(c["shown"]["throughput"]["recorded"] is False for c in regime["comparisons"])


def _slow_client_bound_repetition(run: Any) -> pd.DataFrame:
    """poll's repetition 0 at 1,000 active: 60% dearer and client-bound (busy 0.8)."""
    trials = run.trials.copy()
    cell = (
        (trials["scenario"] == "active-scaling") & (trials["backend"] == "poll")
        & (trials["active_connections"] == 1000) & (trials["repetition"] == 0)
    )  # fmt: skip
    trials.loc[cell, "server_cpu_us_per_req"] *= 1.6
    trials.loc[cell, "throughput_rps"] /= 1.6
    busy = pd.Series(0.99, index=trials.index).mask(cell, 0.8)
    return trials.assign(server_busy_fraction=busy)


def test_a_client_bound_slow_repetition_stays_in_and_the_sensitivity_shows_both() -> None:
    run = synthetic_run_in_memory(SyntheticSpec(noise=0.01, repetitions=5, include_micro=False))
    trials = _slow_client_bound_repetition(run)
    verdict = compute_verdict(replace(run, trials=trials))
    active = verdict["claims"][1]["evidence"]["regimes"][1]
    poll = next(
        c for c in active["comparisons"]
        if c["backend"] == "poll" and c["active_connections"] == 1000
    )  # fmt: skip
    assert poll["decision"]["n_pairs"] == 5  # the slow repetition is in
    assert poll["class"] == "INCONCLUSIVE"
    sens = verdict["sensitivity"]
    assert sens["trials_client_bound"] == 1
    rows = {r["where"]: r for r in sens["statuses"]}
    row = rows["claim 2, Python family, all-active"]
    assert (row[PRIMARY_ANALYSIS], row[CLIENT_BOUND_ANALYSIS]) == ("INCONCLUSIVE", "NOT SUPPORTED")
    assert row["differs"] and "claim 2, Python family, all-active" in sens["differ"]
    assert "claim 2, Python family, all-active INCONCLUSIVE -> NOT SUPPORTED" in sens["sentence"]
    assert not rows["claim 1"]["differs"]
    # Every status of the verdict is in the table.
    assert rows["claim 3, Python family, in-server wait call (CPU time)"][PRIMARY_ANALYSIS]
    report = render_report(run, verdict)
    assert "### Sensitivity: the client-bound rule" in report
    assert "| claim 2, Python family, all-active | INCONCLUSIVE | NOT SUPPORTED | yes |" in report


def test_an_undecided_all_active_cell_says_what_the_data_show() -> None:
    run = synthetic_run_in_memory(SyntheticSpec(noise=0.01, repetitions=5, include_micro=False))
    trials = _slow_client_bound_repetition(run)
    verdict = compute_verdict(replace(run, trials=trials))
    active = verdict["claims"][1]["evidence"]["regimes"][1]
    poll = next(
        c for c in active["comparisons"]
        if c["backend"] == "poll" and c["active_connections"] == 1000
    )  # fmt: skip
    shares = {b: v["wait_share_of_cpu_per_request"] for b, v in poll["mechanism"].items()}
    assert set(shares) == {"epoll", "poll"} and max(shares.values()) < 0.10
    assert (
        "of server CPU per request here: the mechanism cannot move this cell"
        in (poll["class_reason"])
    )
    assert all(v["wait_us_per_event"] > 0 for v in poll["mechanism"].values())


def test_steal_above_its_bound_is_a_fault() -> None:
    run = synthetic_run_in_memory(SyntheticSpec(include_micro=False))
    stolen = (run.trials["backend"] == "epoll") & (run.trials["scenario"] == "idle-scaling")
    steal = pd.Series(0.0, index=run.trials.index).mask(stolen, 0.2)
    verdict = compute_verdict(replace(run, trials=run.trials.assign(steal_fraction=steal)))
    assert verdict["method"]["trials_steal"] == int(stolen.sum())
    assert verdict["data_quality"]["steal"]["trials"] == int(stolen.sum())
    idle = verdict["claims"][1]["evidence"]["regimes"][0]
    assert all(c["decision"]["n_denominator"] == 0 for c in idle["comparisons"])


def test_micro_all_ready_rows_are_shown_beside_all_active_cells() -> None:
    run = synthetic_run_in_memory(SyntheticSpec())
    active = compute_verdict(run)["claims"][1]["evidence"]["regimes"][1]
    cell = next(c for c in active["comparisons"] if c["active_connections"] == 256)
    rows = cell["micro_all_ready"]
    assert rows["epoll"]["n_registered"] == 256 and rows[cell["backend"]]["median_us_per_call"] > 0
