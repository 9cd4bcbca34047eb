"""Pooling a cell's ratio over runs: coverage with a known between-run spread."""

from __future__ import annotations

import numpy as np
import pytest

from bench.analyse.runs import pool_runs

SIMULATIONS = 2000
MIN_COVERAGE = 0.93
WITHIN_DF = 12  # the residual df of a 3-repetition run's pooled cell model


@pytest.mark.slow  # Monte Carlo coverage: seconds
@pytest.mark.parametrize("runs", [5, 8])
@pytest.mark.parametrize("tau", [0.0, 0.1, 0.3])
def test_pooled_interval_covers_the_mean_over_runs(runs: int, tau: float) -> None:
    rng = np.random.default_rng([runs, int(tau * 100)])
    truth = np.log(1.5)
    hits = 0
    for _ in range(SIMULATIONS):
        se = rng.uniform(0.04, 0.12, runs)  # within-run standard errors differ by run
        estimate = truth + rng.normal(0, tau, runs) + rng.normal(0, se)
        # Each run knows its standard error only from its own residuals.
        se_hat = se * np.sqrt(rng.chisquare(WITHIN_DF, runs) / WITHIN_DF)
        pooled = pool_runs(estimate, se_hat)
        hits += pooled.ci_low <= np.exp(truth) <= pooled.ci_high
    assert hits / SIMULATIONS >= MIN_COVERAGE


def test_spread_and_tau_describe_the_runs() -> None:
    pooled = pool_runs(np.log([6.3, 8.8, 10.4, 7.5, 7.0]), [0.08] * 5)
    assert (pooled.run_min, pooled.run_max) == pytest.approx((6.3, 10.4))
    assert pooled.tau > 0.1  # the runs disagree by more than their standard errors
    assert pooled.ci_low < pooled.ratio < pooled.ci_high and pooled.n_runs == 5
    agreeing = pool_runs(np.log([8.0, 8.1, 7.9]), [0.08] * 3)
    assert agreeing.tau == 0.0
    assert "Hartung-Knapp" in agreeing.method


def test_one_run_has_no_interval_and_bad_values_are_left_out() -> None:
    one = pool_runs([np.log(2.0), np.nan], [0.1, 0.1])
    assert one.n_runs == 1 and one.ratio == pytest.approx(2.0) and np.isnan(one.ci_low)
    assert pool_runs([], []).n_runs == 0
