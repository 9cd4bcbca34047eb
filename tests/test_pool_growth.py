"""Claim 3's growth pooled over runs (``bench summarise``): its interval covers the mean growth."""

from __future__ import annotations

import numpy as np
import pytest

from bench.analyse.runs import growth_log_se, pool_growth
from bench.analyse.slopes import growth_profile

SETS = 600
RUNS = 5
LEVELS = np.array([0.0, 1000.0, 4000.0])
REPS = 6
MIN_COVERAGE = 0.93


def _fits(rng: np.random.Generator, growth: float, tau: float, noise: float) -> list[list[dict]]:
    """SETS sets of RUNS runs' fits; each run's own growth spread by ``tau`` (log scale)."""
    x = np.tile(LEVELS, REPS)
    blocks = np.repeat(np.arange(REPS), LEVELS.size)
    own = np.expm1(np.log1p(growth) + rng.normal(0, tau, SETS * RUNS))
    truth = 1 + own[:, None] * x[None, :] / LEVELS[-1]
    block = rng.normal(0, 0.3, (SETS * RUNS, REPS))[:, blocks]
    log_y = np.log(truth) + block + rng.normal(0, noise, truth.shape)
    fit = growth_profile(x, blocks, log_y)
    span = LEVELS[-1] - LEVELS[0]
    out = []
    for s in range(SETS):
        rows = range(s * RUNS, (s + 1) * RUNS)
        out.append(
            [
                {
                    "projected_rel_increase": fit["g"][r] * span,
                    "projected_rel_increase_ci_low": fit["g_lo"][r] * span,
                    "projected_rel_increase_ci_high": fit["g_hi"][r] * span,
                    "df": fit["df"][r],
                }
                for r in rows
            ]
        )
    return out


@pytest.mark.slow  # Monte Carlo coverage: seconds
@pytest.mark.parametrize(("growth", "tau"), [(0.0, 0.0), (0.1, 0.05), (0.5, 0.1)])
def test_the_pooled_growth_interval_covers_the_runs_mean_growth(growth: float, tau: float) -> None:
    rng = np.random.default_rng(int(growth * 100 + tau * 1000))
    hits = 0
    for fits in _fits(rng, growth, tau, 0.08):
        pooled = pool_growth(fits)
        hits += pooled.ci_low <= 1 + growth <= pooled.ci_high
    assert hits / SETS >= MIN_COVERAGE


def test_a_run_without_a_two_sided_interval_is_left_out() -> None:
    good = {"projected_rel_increase": 0.1, "projected_rel_increase_ci_low": 0.0,
            "projected_rel_increase_ci_high": 0.2, "df": 10}  # fmt: skip
    open_end = {**good, "projected_rel_increase_ci_high": float("inf")}
    assert np.isnan(growth_log_se(open_end)[0])
    assert pool_growth([good, open_end, good]).n_runs == 2
