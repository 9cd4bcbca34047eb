"""The verdict's nominal 95% intervals cover the truth at least 93% of the time.

Each case simulates RUNS synthetic runs with a known truth and runs them
through the code the verdict calls. The cell ratios and growth fits the
verdict decides on are measured on whole sweeps (``fixtures.simulated_sweep``):
3 and 5 repetitions, 10-40% log-normal noise, select's and poll's noise twice
epoll's (or select's alone three times), a repetition effect, a drift of +-15%
across a repetition (linear, or a step), 10% outliers at x1.6 of which about
70% are dropped as the busy-fraction rule drops slow trials. The fallbacks
(paired, Welch, one cell's geometric mean) are measured on simpler cases with
and without a repetition block effect. Seeded.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from fixtures.simulated_sweep import LEVELS as SWEEP_LEVELS
from fixtures.simulated_sweep import Noise, Sweep, growth, simulate, truth

from bench.analyse.claim3 import micro_fits
from bench.analyse.intervals import (
    CellSides,
    one_sample_bounds,
    paired_bounds,
    pooled_ratio,
    ratio_interval,
    welch_bounds,
)
from bench.analyse.model import LogTrials, fit_contrast, model_ratio
from bench.analyse.slopes import METHOD_MICRO_PROCESSES, growth_fit, growth_profile

pytestmark = pytest.mark.slow  # Monte Carlo coverage of every interval: 15-25 s in all

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


# ------------------------------------------------------------ the design's model
SWEEP_CASES = [
    Noise(reps=3, sigma=0.1),
    Noise(reps=3, sigma=0.4),
    Noise(reps=5, sigma=0.1),
    Noise(reps=5, sigma=0.4),
    Noise(reps=3, sigma=0.2, step=True),
    Noise(reps=3, sigma=0.2, noisy=("select",), comparator_factor=3.0),
]
IDLE_HEAVY = 1000.0


def _run(sweep: Sweep, r: int) -> LogTrials:
    """Simulated run ``r`` as the verdict sees it: the trials the exclusion rule kept."""
    k = sweep.kept[r]
    return LogTrials(
        sweep.values[r][k],
        sweep.levels[k],
        sweep.backends[k].astype(str),
        sweep.repetitions[k].astype(str),
        sweep.positions[r][k],
    )


def _log_truth(cells: list[float], a: str, b: str) -> float:
    return float(np.mean([np.log(truth(c, a) / truth(c, b)) for c in cells]))


def _ratio_coverage(noise: Noise, cells: list[float], other: str, seed: int) -> tuple[float, float]:
    """Coverage of epoll / ``other`` over ``cells`` and the share of runs the model fitted."""
    sweep = simulate(np.random.default_rng(seed), RUNS, noise)
    target = _log_truth(cells, "epoll", other)
    hits = fitted = 0
    for r in range(RUNS):
        est = model_ratio(_run(sweep, r), cells, "epoll", other)
        hits += bool(np.log(est.ci_low) <= target <= np.log(est.ci_high))
        fitted += est.method.startswith("linear-model")
    return hits / RUNS, fitted / RUNS


@pytest.mark.parametrize("noise", SWEEP_CASES, ids=Noise.label)
def test_cell_ratio_from_the_pooled_model_covers(noise: Noise) -> None:
    coverage, fitted = _ratio_coverage(noise, [IDLE_HEAVY], "select", 11)
    assert fitted >= 0.99  # the model, not its fallback, is what is measured
    assert coverage >= MIN_COVERAGE, f"{noise.label()}: {coverage:.3f}"


@pytest.mark.parametrize("noise", SWEEP_CASES[1:3], ids=Noise.label)
def test_pooled_summary_over_cells_from_the_model_covers(noise: Noise) -> None:
    coverage, fitted = _ratio_coverage(noise, [500.0, IDLE_HEAVY], "poll", 12)
    assert fitted >= 0.99
    assert coverage >= MIN_COVERAGE, f"{noise.label()}: {coverage:.3f}"


@pytest.mark.slow  # thousands of simulated fits: seconds
def test_one_variance_for_every_backend_would_not_cover() -> None:
    # Why the model pools the variance over the two backends compared only: with
    # select three times as noisy as epoll and poll, one variance for all three
    # makes epoll-vs-select intervals too narrow.
    noise = SWEEP_CASES[-1]
    sweep = simulate(np.random.default_rng(13), RUNS, noise)
    target = _log_truth([IDLE_HEAVY], "epoll", "select")
    weights = {(IDLE_HEAVY, "epoll"): 1.0, (IDLE_HEAVY, "select"): -1.0}
    hits = {"all three": 0, "the pair": 0}
    for r in range(RUNS):
        run = _run(sweep, r)
        pair = run.subset(np.isin(run.backends, ["epoll", "select"]))
        for name, trials in (("all three", run), ("the pair", pair)):
            fit = fit_contrast(trials, weights)
            if not isinstance(fit, str):
                lo, hi = fit.bounds(0.95)
                hits[name] += bool(lo <= target <= hi)
    assert hits["all three"] / RUNS < MIN_COVERAGE <= hits["the pair"] / RUNS


@pytest.mark.parametrize("noise", SWEEP_CASES, ids=Noise.label)
def test_growth_with_position_and_exclusions_covers(noise: Noise) -> None:
    sweep = simulate(np.random.default_rng(14), RUNS, noise)
    for backend in ("epoll", "poll", "select"):
        m = sweep.backends == backend
        fit = growth_profile(
            sweep.levels[m],
            sweep.repetitions[m],
            np.log(sweep.values[:, m]),
            position=sweep.positions[:, m],
            kept=sweep.kept[:, m],
        )
        g = growth(backend) / SWEEP_LEVELS[-1]
        coverage = _covers(fit["g_lo"], fit["g_hi"], g)
        assert coverage >= MIN_COVERAGE, f"{backend}, {noise.label()}: {coverage:.3f}"


def _one_run_frame(seed: int) -> pd.DataFrame:
    sweep = simulate(np.random.default_rng(seed), 1, SWEEP_CASES[0])
    k = sweep.kept[0]
    return pd.DataFrame(
        {
            "value": sweep.values[0][k],
            "idle_connections": sweep.levels[k],
            "backend": sweep.backends[k].astype(str),
            "repetition": sweep.repetitions[k],
            "position_in_repetition": sweep.positions[0][k],
        }
    )


def test_the_model_is_the_formula_it_names() -> None:
    # The design matrix against statsmodels' own formula for the same model.
    df = _one_run_frame(15)
    trials = LogTrials.from_rows(df, "value", "idle_connections")
    est = model_ratio(trials, [IDLE_HEAVY], "epoll", "select", confidence=0.9)
    pair = df[df["backend"].isin(["epoll", "select"])].assign(
        cell=lambda d: d["idle_connections"].astype(str) + "_" + d["backend"]
    )
    # HC3 standard errors with Student's t on the residual df (bench.analyse.model).
    fit = smf.ols(
        "np.log(value) ~ 0 + C(cell) + C(repetition) + position_in_repetition", data=pair
    ).fit(cov_type="HC3", use_t=True)
    contrast = fit.t_test("C(cell)[1000.0_epoll] - C(cell)[1000.0_select] = 0")
    lo, hi = contrast.conf_int(alpha=0.1)[0]
    assert np.isclose(np.log(est.ratio), float(contrast.effect[0]))
    assert np.isclose(np.log(est.ci_low), lo) and np.isclose(np.log(est.ci_high), hi)
    assert est.df == fit.df_resid and "position in repetition" in est.method
    assert "HC3" in est.method


def test_the_model_says_when_it_has_no_position_or_falls_back() -> None:
    df = _one_run_frame(16).drop(columns="position_in_repetition")
    est = model_ratio(LogTrials.from_rows(df, "value", "idle_connections"), [0.0], "epoll", "poll")
    assert est.method.startswith("linear-model") and "no position term" in est.method
    one_cell = pd.DataFrame(
        {
            "value": [10.0, 12.0, 11.0, 12.5],
            "idle_connections": 0.0,
            "backend": ["epoll", "poll", "epoll", "poll"],
            "repetition": [0, 0, 1, 1],
        }
    )
    est = model_ratio(
        LogTrials.from_rows(one_cell, "value", "idle_connections"), [0.0], "epoll", "poll"
    )
    assert (
        est.method.startswith("paired") and "linear model not fitted: 1 residual df" in est.method
    )
    assert np.isfinite(est.ci_low) and est.n_pairs == 2


@pytest.mark.parametrize("growth_over_range", [0.0, 0.2, 0.5])
@pytest.mark.parametrize("window_noise", [0.03, 0.10])
def test_growth_with_covariates_covers(growth_over_range: float, window_noise: float) -> None:
    # idle-steps' design (bench.analyse.idle_steps): 6 processes at 0, 1,000 and 4,000 in a
    # random order each, a process level, a drift across the process, 10% outliers at x1.6,
    # and a wait call moved by its batch (elasticity 0.6) and a machine speed that also
    # moves the other CPU: the covariates are the batch and the other CPU, measured.
    rng = np.random.default_rng([31, int(growth_over_range * 10), int(window_noise * 100)])
    counts = np.array([0.0, 1000.0, 4000.0])
    procs = 6
    x = np.tile(counts, procs)
    blocks = np.repeat(np.arange(procs), counts.size)
    position = np.stack(
        [np.concatenate([rng.permutation(counts.size) for _ in range(procs)]) for _ in range(RUNS)]
    )
    level = rng.normal(0, 0.5, (RUNS, procs))[:, blocks]
    speed = rng.normal(0, 0.1, (RUNS, x.size)) + 0.05 * position / 2
    batch = rng.normal(0, 0.4, (RUNS, x.size))
    outlier = np.where(rng.random((RUNS, x.size)) < 0.1, np.log(1.6), 0.0)
    log_wait = (
        level + np.log1p(growth_over_range * x / 4000) + speed + 0.6 * batch + outlier
        + rng.normal(0, window_noise, (RUNS, x.size))
    )  # fmt: skip
    log_other = 2.0 + speed + rng.normal(0, window_noise, (RUNS, x.size))
    covariates = np.stack([batch, log_other], axis=2)
    fit = growth_profile(x, blocks, log_wait, position=position, covariates=covariates)
    coverage = _covers(fit["g_lo"], fit["g_hi"], growth_over_range / 4000)
    assert coverage >= MIN_COVERAGE, f"{growth_over_range}, {window_noise}: {coverage:.3f}"
    # The covariates are what buys the precision: without them the batch and the speed
    # are noise, and the interval is wider (the outliers keep the two closer than 2x).
    plain = growth_profile(x, blocks, log_wait, position=position)
    assert np.median(fit["g_hi"] - fit["g_lo"]) < 0.7 * np.median(plain["g_hi"] - plain["g_lo"])


def test_growth_fit_with_covariates_is_the_least_squares_formula_it_names() -> None:
    # The point estimate against statsmodels' OLS of the same log-linear model (small
    # growth: log(1 + g x) ~ g x is then exact enough to compare the slope's sign and size).
    rng = np.random.default_rng(32)
    counts = np.array([0.0, 1000.0, 4000.0])
    x = np.tile(counts, 6)
    blocks = np.repeat(np.arange(6), 3)
    position = np.concatenate([rng.permutation(3) for _ in range(6)]).astype(float)
    batch = rng.normal(0, 0.4, x.size)
    other = rng.normal(0, 0.1, x.size)
    log_y = 1.0 + 0.6 * batch + 0.8 * other + rng.normal(0, 0.02, x.size)
    fit = growth_fit(x, np.exp(log_y), blocks, position, covariates=np.column_stack([batch, other]))
    frame = pd.DataFrame(
        {"ly": log_y, "x": x, "b": blocks, "p": position, "c1": batch, "c2": other}
    )
    ols = smf.ols("ly ~ 0 + C(b) + p + c1 + c2 + x", data=frame).fit()
    assert np.isclose(fit.rel_slope, ols.params["x"], atol=2e-6)
    assert fit.df == ols.df_resid
