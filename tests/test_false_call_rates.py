"""Each rule's false-call rate on A/A data is at most 5%, and an injected O(N) cost is found.

2,000 simulated runs (``bench.analyse.simulate``) of one family in the quick
preset's idle- and active-scaling cells and repetitions, with noise of 10-30%
per cell and metric, a repetition effect, drift with the trial's position in a
randomly ordered repetition and 10% outliers at x1.6, go through the verdict's
family functions (``claim2_family``, ``claim3_family``); their calls are read
by the checks the calibration summary reads (``bench.analyse.calibration``).

A/A: select, poll and epoll identical, so every "better", "worse", "growing",
claim 2 SUPPORTED or PARTLY SUPPORTED (or a regime SUPPORTED) and claim 3 NOT
SUPPORTED is false. Power: the poll backend gets an O(N) term of +20% at
4,000 idle connections on its in-server wait CPU per call and its CPU per
request; its fit must be called growing in at least 80% of runs while epoll,
untouched, is not called growing in at least 95%.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from bench.analyse.calibration import (
    CLAIM2,
    CLAIM2_REGIME,
    CLAIM3,
    EQUIVALENCE,
    FLAT,
    GROWING,
    Check,
    claim2_checks,
    claim3_checks,
)
from bench.analyse.claim2 import claim2_family
from bench.analyse.claim3 import TRIAL_METRICS, claim3_family
from bench.analyse.families import FamilyRoles, roles_of
from bench.analyse.simulate import SimulationSpec, Simulator
from servers import registry

# ~0.15 s of claim functions per simulated run: the whole file takes minutes.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

RUNS = 2000
MAX_FALSE_CALL_RATE = 0.05
MIN_POWER = 0.80
MIN_SUBJECT_NOT_GROWING = 0.95
FAMILY = registry.FAMILY_PYTHON_LOOP
INJECTED_BACKEND = "poll"
INJECTED_GROWTH = 0.20
# The claim-3 metrics the injection reaches, by trial-table column.
METRIC_LABEL = {column: label for column, label, *_ in TRIAL_METRICS}
INJECTED_METRICS = ("server_wait_us_per_call", "server_cpu_us_per_req")


@pytest.fixture(scope="module")
def roles() -> FamilyRoles:
    return roles_of(FAMILY)


@pytest.fixture(scope="module")
def simulator() -> Simulator:
    return Simulator(FAMILY)


def _simulate(
    simulator: Simulator, spec: SimulationSpec, seed: int, judge: Callable[[pd.DataFrame], list]
) -> list[list[Check]]:
    rng = np.random.default_rng(seed)
    return [judge(simulator.table(spec, rng)) for _ in range(RUNS)]


@pytest.fixture(scope="module")
def aa_runs(simulator: Simulator, roles: FamilyRoles) -> list[list[Check]]:
    subject = str(roles.subject)

    def judge(table: pd.DataFrame) -> list[Check]:
        return claim2_checks(claim2_family(table, roles), subject) + claim3_checks(
            claim3_family(table, roles), subject
        )

    return _simulate(simulator, SimulationSpec(), 16, judge)


@pytest.fixture(scope="module")
def power_runs(simulator: Simulator, roles: FamilyRoles) -> list[list[Check]]:
    spec = SimulationSpec(growth=((INJECTED_BACKEND, INJECTED_GROWTH),))
    return _simulate(
        simulator, spec, 17, lambda t: claim3_checks(claim3_family(t, roles), str(roles.subject))
    )


def _rate(runs: list[list[Check]], made: Callable[[Check], bool]) -> float:
    return float(np.mean([any(made(c) for c in checks) for checks in runs]))


def _keys(runs: list[list[Check]], rule: str) -> list[str]:
    return sorted({c.key for checks in runs for c in checks if c.rule == rule})


def _outcome_share(runs: list[list[Check]], key: str, outcome: str) -> float:
    outcomes = [c.outcome for checks in runs for c in checks if c.key == key]
    assert len(outcomes) == len(runs), f"{key} judged in {len(outcomes)} of {len(runs)} runs"
    return float(np.mean([o == outcome for o in outcomes]))


def test_claim2_is_rarely_supported_when_every_backend_is_the_same(
    aa_runs: list[list[Check]],
) -> None:
    rate = _rate(aa_runs, lambda c: c.rule in (CLAIM2, CLAIM2_REGIME) and c.false_call)
    assert rate <= MAX_FALSE_CALL_RATE


def test_each_claim2_comparison_is_rarely_called_better_or_worse(
    aa_runs: list[list[Check]],
) -> None:
    keys = _keys(aa_runs, EQUIVALENCE)
    # idle-heavy: epoll against select and poll; all-active: at 8 (shown), 100 and 1,000.
    assert len(keys) >= 6, keys
    rates = {k: _rate(aa_runs, lambda c, k=k: c.key == k and c.false_call) for k in keys}
    assert max(rates.values()) <= MAX_FALSE_CALL_RATE, rates


def test_claim3_is_rarely_refuted_when_epoll_does_not_grow(aa_runs: list[list[Check]]) -> None:
    assert _rate(aa_runs, lambda c: c.rule == CLAIM3 and c.false_call) <= MAX_FALSE_CALL_RATE


def test_no_backend_is_often_called_growing_when_nothing_grows(
    aa_runs: list[list[Check]],
) -> None:
    keys = _keys(aa_runs, FLAT)
    assert len(keys) >= 6, keys  # select, poll and epoll on at least two metrics
    rates = {k: _rate(aa_runs, lambda c, k=k: c.key == k and c.false_call) for k in keys}
    assert max(rates.values()) <= MAX_FALSE_CALL_RATE, rates


@pytest.mark.parametrize("metric", INJECTED_METRICS)
def test_an_injected_o_n_cost_of_20_percent_at_4000_is_called_growing(
    power_runs: list[list[Check]], metric: str
) -> None:
    key = f"claim 3 {METRIC_LABEL[metric]}: {INJECTED_BACKEND}"
    assert _outcome_share(power_runs, key, GROWING) >= MIN_POWER


@pytest.mark.parametrize("metric", INJECTED_METRICS)
def test_epoll_beside_the_injected_backend_stays_not_growing(
    power_runs: list[list[Check]], roles: FamilyRoles, metric: str
) -> None:
    key = f"claim 3 {METRIC_LABEL[metric]}: {roles.subject}"
    assert 1.0 - _outcome_share(power_runs, key, GROWING) >= MIN_SUBJECT_NOT_GROWING


# ---------------------------------------------------------------- the simulator itself


def test_the_fast_tables_give_the_verdict_the_schema_typed_tables_give(
    simulator: Simulator, roles: FamilyRoles
) -> None:
    spec = SimulationSpec(growth=((INJECTED_BACKEND, INJECTED_GROWTH),))
    for seed in range(5):
        fast = simulator.table(spec, np.random.default_rng(seed))
        typed = simulator.table(spec, np.random.default_rng(seed), schema_dtypes=True)
        assert str(typed["idle_connections"].dtype) == "Int64"
        for judge in (claim2_family, claim3_family):
            a, b = judge(fast, roles), judge(typed, roles)
            assert json.dumps(a, default=str) == json.dumps(b, default=str)


def test_each_repetition_is_a_random_order_of_whole_cells(simulator: Simulator) -> None:
    table = simulator.table(SimulationSpec(), np.random.default_rng(3))
    cell = ["mode", "idle_connections", "active_connections"]
    orders = []
    for _, rep in table.groupby(["scenario", "repetition"]):
        pos = rep["position_in_repetition"].astype(int)
        assert sorted(pos) == list(range(len(rep)))
        # A cell's backends take consecutive positions.
        spans = rep.assign(p=pos).groupby(cell)["p"].agg(lambda p: p.max() - p.min() + 1)
        sizes = rep.groupby(cell).size()
        assert (spans == sizes).all()
        orders.append(tuple(rep.sort_values("position_in_repetition")["backend"]))
    assert len(set(orders)) > 1


def test_the_injection_is_the_stated_growth_and_the_rest_is_the_same(
    simulator: Simulator,
) -> None:
    spec = SimulationSpec(growth=((INJECTED_BACKEND, INJECTED_GROWTH),))
    rng = np.random.default_rng(5)
    rows = pd.concat([simulator.table(spec, rng) for _ in range(300)], ignore_index=True)
    rows = rows[(rows["scenario"] == "idle-scaling") & (rows["mode"] == "closed")]
    log_wait = np.log(rows["server_wait_us_per_call"])
    means = log_wait.groupby([rows["backend"], rows["idle_connections"]]).mean()
    grown = means[(INJECTED_BACKEND, 4000)] - means[(INJECTED_BACKEND, 0)]
    flat = means[("epoll", 4000)] - means[("epoll", 0)]
    assert grown == pytest.approx(np.log(1 + INJECTED_GROWTH), abs=0.03)
    assert flat == pytest.approx(0.0, abs=0.03)


def test_one_trial_in_ten_is_an_outlier_at_1_6(simulator: Simulator) -> None:
    quiet = SimulationSpec(noise=(0.0, 0.0), repetition_sigma=0.0, drift=0.0)
    rng = np.random.default_rng(6)
    rows = pd.concat([simulator.table(quiet, rng) for _ in range(100)], ignore_index=True)
    cells = ["scenario", "mode", "backend", "idle_connections", "active_connections"]
    cpu = rows["server_cpu_us_per_req"]
    ratio = cpu / cpu.groupby([rows[c] for c in cells]).transform("min")
    assert np.allclose(ratio[ratio > 1.0001], 1.6)
    assert (ratio > 1.0001).mean() == pytest.approx(0.10, abs=0.01)
