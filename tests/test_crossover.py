"""The crossover fit: its interval covers a known crossover, and the run-level analysis and chart.

Coverage: RUNS simulated ready-fraction sweeps per case with a known ratio
curve ratio = A + B/share (the model the fit assumes), log-normal noise of 1%,
5% and 15% on each backend's throughput, a per-repetition factor both
backends share (it cancels in the paired ratios), 3 and 5 repetitions, and
crossovers at 10%, 35% and 70% active. Seeded; numpy only.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from bench.analyse.crossover import crossover
from bench.analyse.crossover_fit import crossover_fit, profile
from bench.present.crossover_chart import chart_crossover
from bench.store.results import RunData
from bench.store.verdict_file import Verdict

RUNS = 1000
MIN_COVERAGE = 0.92
SHARES = np.array([0.01, 0.05, 0.2, 0.5, 1.0])
CASES = list(itertools.product((0.85, 0.6), (0.1, 0.35, 0.7), (0.01, 0.05, 0.15), (3, 5)))


def _simulate(
    a: float, star: float, noise: float, reps: int, runs: int, seed: int, b: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    b = (1 - a) * star if b is None else b  # by default ratio(star) = a + b / star = 1
    shares = np.repeat(SHARES, reps)
    block = np.tile(rng.lognormal(0, 0.3, (runs, reps)), SHARES.size)
    epoll = 1000 * (a + b / shares) * rng.lognormal(0, noise, (runs, shares.size)) * block
    other = 1000 * rng.lognormal(0, noise, (runs, shares.size)) * block
    return shares, np.log(epoll) - np.log(other)


@pytest.mark.slow  # Monte Carlo coverage: seconds
@pytest.mark.parametrize(("a", "star", "noise", "reps"), CASES)
def test_the_crossover_interval_covers_a_known_crossover(
    a: float, star: float, noise: float, reps: int
) -> None:
    seed = int(a * 100) * 10_000 + int(star * 100) * 100 + int(noise * 100) + reps
    shares, logs = _simulate(a, star, noise, reps, RUNS, seed)
    fit = profile(shares, logs)
    covered = (fit["low"] <= star) & (star <= fit["high"])
    assert covered.mean() >= MIN_COVERAGE, covered.mean()


def test_a_clean_curve_gives_its_crossover_and_a_narrow_interval() -> None:
    shares, logs = _simulate(0.8, 0.3, 0.01, 5, 1, seed=1)  # one draw (1 in 20 misses)
    fit = crossover_fit(shares, logs[0])
    assert fit.status == "crossover" and fit.direction == "falls"
    assert fit.estimate == pytest.approx(0.3, rel=0.05)
    assert fit.ci_low < 0.3 < fit.ci_high and fit.ci_high / fit.ci_low < 1.2
    assert not fit.low_open and not fit.high_open
    assert fit.curve(np.array([fit.estimate]))[0] == pytest.approx(1.0, rel=1e-6)


def test_a_ratio_above_one_everywhere_has_no_crossover_inside_the_range() -> None:
    shares, logs = _simulate(1.3, 0.3, 0.02, 5, 1, seed=8, b=0.05)  # 1.3 + 0.05/share > 1
    fit = crossover_fit(shares, logs[0])
    assert fit.status == "none" and fit.direction == "above"
    assert np.isnan(fit.estimate) and fit.ratio_at_max > 1


def test_two_shares_are_not_enough() -> None:
    fit = crossover_fit([0.1, 0.1, 1.0, 1.0], [0.5, 0.6, -0.1, -0.05])
    assert fit.status == "insufficient"


def _trials(client_bound_epoll_at: float | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for n, backends in ((1000, ("select", "poll", "epoll")), (4000, ("poll", "epoll"))):
        for share in SHARES:
            k = max(1, round(share * n))
            for rep in range(5):
                block = rng.lognormal(0, 0.1)
                for b in backends:
                    thr = 40_000 * block * rng.lognormal(0, 0.03)
                    if b != "epoll":
                        thr /= 0.8 + 0.2 * 0.3 / share  # crossover at 30% active
                    busy = 0.97
                    if b == "epoll" and share == client_bound_epoll_at:
                        busy, thr = 0.4, thr / 2  # the client set the pace
                    rows.append(
                        {
                            "scenario": "ready-fraction", "backend": b, "mode": "closed",
                            "idle_connections": n - k, "active_connections": k,
                            "repetition": rep, "status": "ok", "flagged": False,
                            "throughput_rps": thr, "server_cpu_us_per_req": 1e6 / thr,
                            "server_busy_fraction": busy,
                        }
                    )  # fmt: skip
    return pd.DataFrame(rows)


def test_the_run_level_crossover_per_metric_count_and_comparator() -> None:
    out = crossover(_trials())
    comps = out["families"][0]["comparisons"]
    keys = {(c["metric"], c["registered"], c["other"]) for c in comps}
    assert keys == {
        (m, n, o)
        for m in ("throughput", "cpu_per_request")
        for n, o in ((1000, "select"), (1000, "poll"), (4000, "poll"))
    }
    for c in comps:
        assert c["fit"]["status"] == "crossover", c["sentence"]
        assert c["fit"]["ci_low"] <= 0.3 <= c["fit"]["ci_high"], c["sentence"]
        assert "falls to 1.0" in c["sentence"]
    assert "crossover" in out["rules"]


def test_a_client_bound_epoll_leaves_the_throughput_fit_but_not_the_cpu_fit() -> None:
    out = crossover(_trials(client_bound_epoll_at=0.01))
    comps = out["families"][0]["comparisons"]
    thr = next(c for c in comps if c["metric"] == "throughput" and c["registered"] == 1000)
    cpu = next(c for c in comps if c["metric"] == "cpu_per_request" and c["registered"] == 1000)
    assert 0.01 not in {p["share"] for p in thr["points"]}
    assert 0.01 in {p["share"] for p in cpu["points"]}


def test_the_chart_marks_the_crossover_and_needs_data() -> None:
    run = RunData(Path("."), {}, _trials(), pd.DataFrame())
    # The chart draws the verdict's crossover section (here the part of it the rows give).
    verdict = Verdict(run_id="t", generated_utc="", warnings=[], method={}, data_quality={},
                      claims=[], crossover=crossover(run))  # fmt: skip
    fig = chart_crossover(run, verdict)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    empty = RunData(Path("."), {}, _trials().iloc[0:0], pd.DataFrame())
    assert chart_crossover(empty, verdict) is None
