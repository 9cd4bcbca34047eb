"""The verdict's nominal 95% intervals cover the truth at least 93% of the time.

Each case simulates RUNS synthetic runs with a known truth (log-normal
multiplicative noise of 5-40%, 3 and 5 repetitions, with and without a
repetition block effect shared by every value of a repetition) and runs them
through the same vectorised cores the verdict calls. Seeded; numpy only.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from bench.analyse.claim3 import micro_fits
from bench.analyse.intervals import (
    CellSides,
    one_sample_bounds,
    paired_bounds,
    pooled_ratio,
    ratio_interval,
    welch_bounds,
)
from bench.analyse.slopes import METHOD_MICRO_PROCESSES, growth_fit, growth_profile

RUNS = 2000
MIN_COVERAGE = 0.93
NOISES = (0.05, 0.2, 0.4)
REPS = (3, 5)
BLOCKS = (0.0, 0.3)  # sigma of the per-repetition factor
CASES = list(itertools.product(NOISES, REPS, BLOCKS))
LEVELS = np.array([0.0, 500.0, 1000.0, 4000.0])
# Flat (epoll), +50% over the range (claim 3's refutation) and x30 (select, poll),
# spread over the noise and repetition cases.
GROWTHS = (0.0, 0.5, 30.0)


def _rng(*key: float) -> np.random.Generator:
    return np.random.default_rng([int(k * 1000) for k in key])


def _covers(lo: np.ndarray, hi: np.ndarray, truth: float | np.ndarray) -> float:
    return float(np.mean((lo <= truth) & (truth <= hi)))


@pytest.mark.parametrize(("noise", "reps", "block"), CASES)
def test_a_cells_geometric_mean_interval_covers(noise: float, reps: int, block: float) -> None:
    rng = _rng(noise, reps, block, 1)
    truth = 40.0
    # Within one cell each repetition is its own block: the block effect adds spread.
    values = truth * rng.lognormal(0, block, (RUNS, reps)) * rng.lognormal(0, noise, (RUNS, reps))
    _, lo, hi = one_sample_bounds(np.log(values))
    assert _covers(lo, hi, np.log(truth)) >= MIN_COVERAGE


@pytest.mark.parametrize(("noise", "reps", "block"), CASES)
def test_ratio_intervals_cover_paired_and_welch(noise: float, reps: int, block: float) -> None:
    rng = _rng(noise, reps, block, 2)
    truth = 1.3
    shared = rng.lognormal(0, block, (RUNS, reps))  # both backends in one repetition
    a = truth * shared * rng.lognormal(0, noise, (RUNS, reps))
    b = shared * rng.lognormal(0, noise, (RUNS, reps))
    _, lo, hi = paired_bounds(np.log(a) - np.log(b))
    paired = _covers(lo, hi, np.log(truth))
    _, lo, hi = welch_bounds(np.log(a), np.log(b))
    welch = _covers(lo, hi, np.log(truth))
    assert paired >= MIN_COVERAGE
    assert welch >= MIN_COVERAGE  # a shared block only widens Welch's interval


@pytest.mark.parametrize(("noise", "reps", "block"), CASES)
def test_growth_and_slope_intervals_cover(noise: float, reps: int, block: float) -> None:
    rng = _rng(noise, reps, block, 3)
    growth = GROWTHS[(NOISES.index(noise) + REPS.index(reps)) % len(GROWTHS)]
    base = 10.0
    slope = base * growth / LEVELS[-1]
    x = np.tile(LEVELS, reps)
    blocks = np.repeat(np.arange(reps), LEVELS.size)
    factor = rng.lognormal(0, block, (RUNS, reps))
    y = (base + slope * x) * np.repeat(factor, LEVELS.size, axis=1)
    y = y * rng.lognormal(0, noise, (RUNS, x.size))
    fit = growth_profile(x, blocks, np.log(y))
    assert _covers(fit["g_lo"], fit["g_hi"], slope / base) >= MIN_COVERAGE
    # The slope in the metric's unit is at this run's typical cost (the blocks' geometric mean).
    typical = slope * np.exp(np.log(factor).mean(axis=1))
    assert _covers(fit["s_lo"], fit["s_hi"], typical) >= MIN_COVERAGE


@pytest.mark.parametrize("noise", NOISES)
def test_micro_growth_interval_covers(noise: float) -> None:
    # A table from before the processes: one value per descriptor count (one block).
    rng = _rng(noise, 4)
    x = np.array([16.0, 256.0, 1000.0, 2000.0, 4000.0])
    base, growth = 1.0, 0.5
    slope = base * growth / (x[-1] - x[0])
    y = (base + slope * (x - x[0])) * rng.lognormal(0, noise, (RUNS, x.size))
    fit = growth_profile(x, np.zeros(x.size), np.log(y), floor_var=1e-6)
    assert _covers(fit["g_lo"], fit["g_hi"], slope / base) >= MIN_COVERAGE


MICRO_COUNTS = np.array([16.0, 32.0, 64.0, 256.0, 1000.0, 2000.0, 3000.0, 4000.0])  # quick set
MICRO_PROCESSES = 5


def _micro_tables(noise: float, growth: float, runs: int) -> tuple[np.ndarray, ...]:
    """(counts, process of each point, values (runs, points)) of simulated micro tables.

    Each fresh process has its own level (it lands on a faster or slower phase of the
    machine: sigma 0.2) and noise on each of its per-count medians.
    """
    rng = _rng(noise, growth, 7)
    x = np.tile(MICRO_COUNTS, MICRO_PROCESSES)
    process = np.repeat(np.arange(MICRO_PROCESSES), MICRO_COUNTS.size)
    truth = 1.0 + growth * (x - x.min()) / (x.max() - x.min())
    offset = rng.lognormal(0, 0.2, (runs, MICRO_PROCESSES))[:, process]
    return x, process, truth * offset * rng.lognormal(0, noise, (runs, x.size))


@pytest.mark.parametrize(("noise", "growth"), list(itertools.product((0.02, 0.1, 0.3), (0.0, 0.5))))
def test_micro_growth_interval_covers_with_the_process_as_block(
    noise: float, growth: float
) -> None:
    x, process, y = _micro_tables(noise, growth, RUNS)
    fit = growth_profile(x, process, np.log(y))
    span = x.max() - x.min()
    assert _covers(fit["g_lo"] * span, fit["g_hi"] * span, growth) >= MIN_COVERAGE


def test_micro_fits_uses_the_tested_core_with_processes_as_blocks() -> None:
    x, process, y = _micro_tables(0.1, 0.5, 3)
    core = growth_profile(x, process, np.log(y))
    for run in range(3):
        table = pd.DataFrame(
            {"mechanism": "epoll", "ready": "one", "n_registered": x, "process": process,
             "median_us": y[run]}
        )  # fmt: skip
        fit = micro_fits(table)["epoll"]
        assert fit.method == METHOD_MICRO_PROCESSES
        assert fit.n_blocks == MICRO_PROCESSES == fit.min_reps_per_level
        assert fit.df == x.size - MICRO_PROCESSES - 1
        assert np.isclose(fit.rel_slope_ci_low, core["g_lo"][run])
        assert np.isclose(fit.rel_slope_ci_high, core["g_hi"][run])


@pytest.mark.parametrize(("noise", "reps", "block"), CASES)
def test_pooled_summary_covers(noise: float, reps: int, block: float) -> None:
    rng = _rng(noise, reps, block, 5)
    truths = (1.0, 1.2)  # two cells; the pooled truth is their geometric mean
    hits = 0
    n = RUNS // 10  # pooled_ratio is not vectorised; 200 runs keep the test fast
    for _ in range(n):
        shared = rng.lognormal(0, block, reps)
        cells = []
        for t in truths:
            a = t * shared * rng.lognormal(0, noise, reps)
            b = shared * rng.lognormal(0, noise, reps)
            cells.append(CellSides(a, b, list(range(reps)), list(range(reps))))
        est = pooled_ratio(cells)
        hits += est.ci_low <= np.sqrt(np.prod(truths)) <= est.ci_high
    assert hits / n >= MIN_COVERAGE - 0.02  # 200 runs: allow for binomial spread


def test_the_public_functions_call_the_tested_cores() -> None:
    rng = np.random.default_rng(6)
    a, b = rng.lognormal(0, 0.2, 5), rng.lognormal(0, 0.2, 5)
    est = ratio_interval(a, b, range(5), range(5))
    _, lo, hi = paired_bounds((np.log(a) - np.log(b))[None, :])
    assert est.method.startswith("paired") and np.isclose(np.log(est.ci_low), lo[0])
    est = ratio_interval(a, b)
    _, lo, hi = welch_bounds(np.log(a)[None, :], np.log(b)[None, :])
    assert est.method.startswith("Welch") and np.isclose(np.log(est.ci_high), hi[0])
    x = np.repeat(LEVELS, 3)
    y = (10 + 0.001 * x) * rng.lognormal(0, 0.1, x.size)
    fit = growth_fit(x, y, np.tile([0, 1, 2], LEVELS.size))
    core = growth_profile(x, np.tile([0, 1, 2], LEVELS.size), np.log(y)[None, :])
    assert np.isclose(fit.rel_slope_ci_low, core["g_lo"][0])
    assert "block per repetition" in fit.method


def test_no_interval_is_narrower_than_a_t_interval_unless_paired() -> None:
    # Welch on two independent groups is never narrower than the t interval of the
    # larger-variance group alone; pairing may be narrower and says so in its method.
    rng = np.random.default_rng(7)
    a = rng.lognormal(0, 0.3, (RUNS, 3))
    b = rng.lognormal(0, 0.3, (RUNS, 3))
    _, wlo, whi = welch_bounds(np.log(a), np.log(b))
    _, lo_a, hi_a = one_sample_bounds(np.log(a))
    _, lo_b, hi_b = one_sample_bounds(np.log(b))
    widest_alone = np.maximum(hi_a - lo_a, hi_b - lo_b)
    assert np.all(whi - wlo >= widest_alone / np.sqrt(2) - 1e-12)
    est = ratio_interval(a[0], b[0], range(3), range(3))
    assert "paired" in est.method
