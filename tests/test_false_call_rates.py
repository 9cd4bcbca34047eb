"""Each rule's false-call rate on A/A data is at most 5%, and an injected O(N) cost is found.

Simulated runs (``bench.analyse.simulate``; each test's count is stated beside it,
chosen so its bound lies at least 2.4 Monte Carlo standard errors from the rate measured
in a larger simulation) of one family in the quick
preset's idle- and active-scaling cells and repetitions, with noise of 10-30%
per cell and metric, a repetition effect, drift with the trial's position in a
randomly ordered repetition and 10% outliers at x1.6, go through the verdict's
family functions (``claim2_family``, ``claim3_family``); their calls are read
by the checks the calibration summary reads (``bench.analyse.calibration``).

A/A: select, poll and epoll identical, so every "better", "worse", "growing",
claim 2 SUPPORTED or PARTLY SUPPORTED (or a regime SUPPORTED) and claim 3 NOT
SUPPORTED is false. Power: on the micro wait call (5 processes, the quick
set's counts) an O(N) term of +20% at 4,000 descriptors on a test mechanism
must be called growing in at least 80% of runs while epoll, untouched, is
called flat in at least 95%. The running servers' own figures have 3
repetitions of 10-30% noise: there the design's resolution is stated instead,
the smallest O(N) term found 80% of the time (``IN_SERVER_DETECTABLE_GROWTH``,
x2.5 at 4,000 idle connections; +20% is found about 12% of the time, which is
why claim 3 needs the micro wait call to call epoll flat). The family's epoll is
measured in idle-steps (6 server processes, each at every count in turn): there
an O(N) term of +50% is found at least 80% of the time
(``IN_SERVER_STEPS_DETECTABLE_GROWTH``; 2026-12-05, 200 simulated runs per size:
+20% 47%, +50% 97%, with window noise of 3-10% and one window in ten at x1.6).
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
    claim3_checks,
)
from bench.analyse.claim2 import claim2_family
from bench.analyse.claim3 import TRIAL_METRICS, claim3_family, micro_fits
from bench.analyse.families import FamilyRoles, roles_of
from bench.analyse.flatness import classify_fit
from bench.analyse.simulate import SimulationSpec, Simulator
from bench.analyse.simulated_checks import CLAIM2_JUDGE, CLAIM3_JUDGE, simulated_checks
from bench.analyse.slopes import METHOD_MICRO_PROCESSES, SlopeFit, _to_fit, growth_profile
from servers import registry

# ~0.05 s of claim 2 and ~0.08 s of claim 3 per simulated run: the file takes minutes.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

# Simulated runs per check, judged on every usable CPU (bench.analyse.simulated_checks; the
# draws depend on the seed and the count only). With 2,000 runs (seed 16, 2026-12-06):
# claim 2 false SUPPORTED 0.15%, the most frequent per-comparison call 2.7%, claim 3
# refuted 1.9%, the most frequent "growing" 3.2%. At 800 runs the Monte Carlo standard
# error of a 3.2% rate is sqrt(0.032 * 0.968 / 800) = 0.62 points: the 5% bound stands
# 2.9 of them above it (the other rates: 3.7 or more). At these 800 runs the figures are
# 0.0%, 3.25%, 1.75% and 4.0%.
RUNS = 800
# The in-server power runs (seed 17): in 2,000 runs the injected +150% was called growing
# in 83.1% (wait call) and 84.1% (CPU per request), epoll beside it not growing in 97.5%
# and 97.1%. At 800 runs the standard errors are 1.3 and 0.6 points: MIN_POWER lies 2.4
# of them below the rates, MIN_SUBJECT_NOT_GROWING 3.5. At these 800 runs: 82.8%, 83.1%,
# 97.6% and 96.6%.
POWER_RUNS = 800
MAX_FALSE_CALL_RATE = 0.05
MIN_POWER = 0.80
MIN_SUBJECT_NOT_GROWING = 0.95
FAMILY = registry.FAMILY_PYTHON_LOOP
INJECTED_BACKEND = "poll"
INJECTED_GROWTH = 0.20
# The in-server metrics' resolution at the quick preset (3 repetitions, 3-4 counts,
# 10-30% noise): power measured with 150 simulated runs per size on 2026-12-05 was
# 16% at +20%, 37% at +50%, 71% at +100% and 93% at +200%.
IN_SERVER_DETECTABLE_GROWTH = 1.50
# The same for epoll in idle-steps, where each process is its own block.
IN_SERVER_STEPS_DETECTABLE_GROWTH = 0.50
# In 500 simulated runs (2026-12-06) the +50% term was called growing, and claim 3
# refuted, in 95.4%: at 100 runs the Monte Carlo standard error of that share is
# sqrt(0.954 * 0.046 / 100) = 2.1 points, and MIN_POWER lies 7.3 of them below it.
STEPS_POWER_RUNS = 100
# The claim-3 metrics the injection reaches, by trial-table column.
METRIC_LABEL = {column: label for column, label, *_ in TRIAL_METRICS}
INJECTED_METRICS = ("server_wait_us_per_call", "server_cpu_us_per_req")


@pytest.fixture(scope="module")
def roles() -> FamilyRoles:
    return roles_of(FAMILY)


@pytest.fixture(scope="module")
def simulator() -> Simulator:
    return Simulator(FAMILY)


@pytest.fixture(scope="module")
def aa_judged() -> dict[str, list[list[Check]]]:
    """Claim 2's and claim 3's checks of RUNS simulated A/A runs."""
    return simulated_checks(FAMILY, SimulationSpec(), 16, RUNS)


@pytest.fixture(scope="module")
def aa_runs(aa_judged: dict[str, list[list[Check]]]) -> list[list[Check]]:
    return aa_judged[CLAIM2_JUDGE]


@pytest.fixture(scope="module")
def aa_claim3_runs(aa_judged: dict[str, list[list[Check]]]) -> list[list[Check]]:
    return aa_judged[CLAIM3_JUDGE]


@pytest.fixture(scope="module")
def power_runs() -> list[list[Check]]:
    spec = SimulationSpec(growth=((INJECTED_BACKEND, IN_SERVER_DETECTABLE_GROWTH),))
    return simulated_checks(FAMILY, spec, 17, POWER_RUNS, judges=(CLAIM3_JUDGE,))[CLAIM3_JUDGE]


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
    # idle-heavy and all-active (1,000 connections; 8 is shown, not judged): epoll
    # against select and against poll.
    assert len(keys) >= 4, keys
    rates = {k: _rate(aa_runs, lambda c, k=k: c.key == k and c.false_call) for k in keys}
    assert max(rates.values()) <= MAX_FALSE_CALL_RATE, rates


def test_claim3_is_rarely_refuted_when_epoll_does_not_grow(
    aa_claim3_runs: list[list[Check]],
) -> None:
    assert len(aa_claim3_runs) == RUNS
    rate = _rate(aa_claim3_runs, lambda c: c.rule == CLAIM3 and c.false_call)
    assert rate <= MAX_FALSE_CALL_RATE


def test_no_backend_is_often_called_growing_when_nothing_grows(
    aa_claim3_runs: list[list[Check]],
) -> None:
    runs = aa_claim3_runs
    keys = _keys(runs, FLAT)
    assert len(keys) >= 6, keys  # select, poll and epoll on at least two metrics
    rates = {k: _rate(runs, lambda c, k=k: c.key == k and c.false_call) for k in keys}
    assert max(rates.values()) <= MAX_FALSE_CALL_RATE, rates


@pytest.mark.parametrize("metric", INJECTED_METRICS)
def test_an_injected_o_n_cost_at_the_stated_resolution_is_called_growing_in_servers(
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


def test_an_injected_o_n_cost_in_epolls_own_processes_is_called_growing(
    simulator: Simulator, roles: FamilyRoles
) -> None:
    subject = str(roles.subject)
    spec = SimulationSpec(growth=((subject, IN_SERVER_STEPS_DETECTABLE_GROWTH),))
    rng = np.random.default_rng(18)
    runs = [
        claim3_checks(claim3_family(simulator.table(spec, rng), roles), subject)
        for _ in range(STEPS_POWER_RUNS)
    ]
    key = f"claim 3 {METRIC_LABEL['server_wait_us_per_call']}: {subject}"
    assert _outcome_share(runs, key, GROWING) >= MIN_POWER
    # ... and claim 3 is refuted for it, the in-server metric being primary.
    assert _rate(runs, lambda c: c.rule == CLAIM3 and c.false_call) >= MIN_POWER


# ---------------------------------------------------------------- the simulator itself


def test_the_fast_tables_give_the_verdict_the_schema_typed_tables_give(
    simulator: Simulator, roles: FamilyRoles
) -> None:
    spec = SimulationSpec(growth=((INJECTED_BACKEND, IN_SERVER_DETECTABLE_GROWTH),))
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
    spec = SimulationSpec(growth=((INJECTED_BACKEND, IN_SERVER_DETECTABLE_GROWTH),))
    rng = np.random.default_rng(5)
    rows = pd.concat([simulator.table(spec, rng) for _ in range(300)], ignore_index=True)
    rows = rows[(rows["scenario"] == "idle-scaling") & (rows["mode"] == "closed")]
    log_wait = np.log(rows["server_wait_us_per_call"])
    means = log_wait.groupby([rows["backend"], rows["idle_connections"]]).mean()
    grown = means[(INJECTED_BACKEND, 4000)] - means[(INJECTED_BACKEND, 0)]
    flat = means[("epoll", 4000)] - means[("epoll", 0)]
    assert grown == pytest.approx(np.log(1 + IN_SERVER_DETECTABLE_GROWTH), abs=0.03)
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


# ---------------------------------------------------------------- power of the micro wait call

# The quick set's descriptor counts and processes (bench.measure.scenarios.micro).
MICRO_COUNTS = np.array([16.0, 32.0, 64.0, 256.0, 1000.0, 2000.0, 3000.0, 4000.0])
MICRO_PROCESSES = 5
# Per-process level (a fresh process lands on a faster or slower phase of the machine)
# and noise on each per-count median: both above the quick set's measured scatter
# (epoll's growth interval was about +-1.5% wide from 5 processes on the 2-vCPU VM).
MICRO_PROCESS_SIGMA = 0.20
# Fitted in one batch per mechanism (``_batched_micro_fits``): 2,000 sets take seconds.
MICRO_RUNS = 2000
MICRO_NOISE = 0.05


MICRO_X = np.tile(MICRO_COUNTS, MICRO_PROCESSES)
MICRO_PROCESS = np.repeat(np.arange(MICRO_PROCESSES), MICRO_COUNTS.size)
MICRO_MECHANISMS = ("epoll", INJECTED_BACKEND)
INJECTED_AT = 4000.0


def _micro_values(rng: np.random.Generator, growth: dict[str, float]) -> dict[str, np.ndarray]:
    """One simulated quick set: each mechanism's medians per process and count (MICRO_X order)."""
    values = {}
    for mechanism in MICRO_MECHANISMS:
        g = growth.get(mechanism, 0.0)
        truth = 1.0 + g * (MICRO_X - MICRO_X.min()) / (INJECTED_AT - MICRO_X.min())
        level = rng.lognormal(0, MICRO_PROCESS_SIGMA, MICRO_PROCESSES)[MICRO_PROCESS]
        values[mechanism] = truth * level * rng.lognormal(0, MICRO_NOISE, MICRO_X.size)
    return values


def _micro_table(values: dict[str, np.ndarray]) -> pd.DataFrame:
    """The quick set as a run's micro table (what ``micro_fits`` reads)."""
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "mechanism": mechanism,
                    "ready": "one",
                    "n_registered": MICRO_X,
                    "process": MICRO_PROCESS,
                    "median_us": median_us,
                }
            )
            for mechanism, median_us in values.items()
        ],
        ignore_index=True,
    )


def _batched_micro_fits(sets: list[dict[str, np.ndarray]]) -> list[dict[str, SlopeFit]]:
    """``micro_fits`` of each quick set, with every set fitted in one batch per mechanism.

    ``micro_fits`` fits one table at a time through ``growth_fit``, whose core
    (``growth_profile``) fits a batch of runs sharing one sweep; batching 2,000
    sets makes the core's per-call work (the grid's cross products) once instead
    of 4,000 times. ``test_batched_micro_fits_are_micro_fits`` checks both agree.
    """
    levels = np.unique(MICRO_X)
    fits: list[dict[str, SlopeFit]] = [{} for _ in sets]
    for mechanism in MICRO_MECHANISMS:
        log_y = np.log(np.array([values[mechanism] for values in sets]))
        core = growth_profile(MICRO_X, MICRO_PROCESS, log_y)
        for run, per_run in enumerate(fits):
            one = {key: column[run : run + 1] for key, column in core.items()}
            per_run[mechanism] = _to_fit(
                one, MICRO_X, levels, MICRO_PROCESSES, MICRO_PROCESSES, METHOD_MICRO_PROCESSES
            )
    return fits


def _micro_classes(seed: int, growth: dict[str, float]) -> dict[str, list[str]]:
    """Each mechanism's claim-3 class in MICRO_RUNS simulated quick sets."""
    rng = np.random.default_rng(seed)
    fits = _batched_micro_fits([_micro_values(rng, growth) for _ in range(MICRO_RUNS)])
    return {
        mechanism: [classify_fit(run[mechanism], need_reps=True)[0] for run in fits]
        for mechanism in MICRO_MECHANISMS
    }


def test_batched_micro_fits_are_micro_fits() -> None:
    rng = np.random.default_rng(20)
    sets = [_micro_values(rng, g) for g in ({}, {INJECTED_BACKEND: INJECTED_GROWTH})] * 3
    sets += [_micro_values(rng, {INJECTED_BACKEND: INJECTED_GROWTH}) for _ in range(20)]
    for values, batched in zip(sets, _batched_micro_fits(sets), strict=True):
        one_by_one = micro_fits(_micro_table(values))
        assert set(one_by_one) == set(batched) == set(MICRO_MECHANISMS)
        for mechanism, fit in one_by_one.items():
            assert fit.method == batched[mechanism].method == METHOD_MICRO_PROCESSES
            assert np.allclose(fit.rel_ci, batched[mechanism].rel_ci, rtol=1e-9)
            assert classify_fit(fit, need_reps=True) == classify_fit(
                batched[mechanism], need_reps=True
            )


def test_the_micro_wait_call_finds_an_injected_o_n_cost_while_epoll_stays_flat() -> None:
    """The primary metric with the resolution for +-20%: an O(N) term of +20% at 4,000
    descriptors on a test mechanism is called growing in at least 80% of 2,000 simulated
    quick sets, and epoll beside it (no injection) is called flat in at least 95%."""
    classes = _micro_classes(18, {INJECTED_BACKEND: INJECTED_GROWTH})
    assert len(classes[INJECTED_BACKEND]) == MICRO_RUNS
    assert np.mean([c == GROWING for c in classes[INJECTED_BACKEND]]) >= MIN_POWER
    assert np.mean([c == FLAT for c in classes["epoll"]]) >= MIN_SUBJECT_NOT_GROWING


def test_the_micro_wait_call_rarely_calls_a_flat_mechanism_growing() -> None:
    calls = _micro_classes(19, {})[INJECTED_BACKEND]
    assert len(calls) == MICRO_RUNS
    assert np.mean([c == GROWING for c in calls]) <= MAX_FALSE_CALL_RATE
