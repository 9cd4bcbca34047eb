"""Claim 2's "about the same": two one-sided tests per all-active cell against +-10%."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fixtures.synthetic_run import SyntheticSpec, synthetic_run_in_memory

from bench.analyse.claim2 import BETTER, EQUIVALENT, WORSE, classify_ratio, judge_regime
from bench.analyse.intervals import RatioEstimate, paired_bounds
from bench.analyse.rules import (
    EQUIVALENCE_BOUNDS,
    EQUIVALENCE_CONFIDENCE,
    EQUIVALENCE_LOG_MARGIN,
    INCONCLUSIVE,
    MIN_CONNECTIONS_FOR_MECHANISM,
)
from bench.analyse.verdict import compute_verdict

QUIET = {"noise": 0.01, "repetitions": 5, "include_micro": False}


def _est(lo: float, hi: float) -> RatioEstimate:
    return RatioEstimate(math.sqrt(lo * hi), lo, hi, 3, 3, "test", EQUIVALENCE_CONFIDENCE)


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0.95, 1.05, EQUIVALENT),
        (EQUIVALENCE_BOUNDS[0], EQUIVALENCE_BOUNDS[1], EQUIVALENT),  # the margin is inclusive
        (1.15, 1.40, BETTER),
        (0.60, 0.85, WORSE),
        (0.95, 1.20, INCONCLUSIVE),  # no difference shown, no equivalence either
        (1.02, 1.30, INCONCLUSIVE),  # better than 1, not surely by 10%
        (0.80, 1.25, INCONCLUSIVE),
        (float("nan"), float("nan"), INCONCLUSIVE),
    ],
)
def test_each_cell_falls_in_one_of_four_classes(lo: float, hi: float, expected: str) -> None:
    assert classify_ratio(_est(lo, hi)) == expected


def _all_active(spec: SyntheticSpec) -> dict:
    verdict = compute_verdict(synthetic_run_in_memory(spec))
    return verdict["claims"][1]["evidence"]["regimes"][1]


def test_equal_backends_on_a_quiet_machine_are_equivalent_in_every_judged_cell() -> None:
    regime = _all_active(SyntheticSpec(**QUIET))
    judged = [c for c in regime["comparisons"] if c["judged"]]
    assert judged and {c["class"] for c in judged} == {EQUIVALENT}
    assert regime["status"] == "NOT SUPPORTED"
    for c in judged:
        assert c["decision"]["confidence"] == EQUIVALENCE_CONFIDENCE
        assert c["decision"]["method"].startswith("linear-model")  # pooled over the cells
        assert c["interval_95"]["confidence"] == 0.95


def test_epoll_30_percent_better_when_all_active_is_better_and_supports_claim_2() -> None:
    spec = SyntheticSpec(**QUIET, epoll_active_ratio=1.3)
    regime = _all_active(spec)
    assert {c["class"] for c in regime["comparisons"] if c["judged"]} == {BETTER}
    assert regime["status"] == "SUPPORTED"
    claim2 = compute_verdict(synthetic_run_in_memory(spec))["claims"][1]
    assert claim2["status"] == "SUPPORTED"


def test_epoll_25_percent_worse_refutes_the_regime() -> None:
    regime = _all_active(SyntheticSpec(**QUIET, epoll_active_ratio=0.75))
    assert {c["class"] for c in regime["comparisons"] if c["judged"]} == {WORSE}
    assert regime["status"] == "NOT SUPPORTED"


def test_noisy_cells_are_inconclusive_not_equivalent() -> None:
    regime = _all_active(SyntheticSpec(noise=0.3, include_micro=False))
    classes = [c["class"] for c in regime["comparisons"] if c["judged"]]
    assert EQUIVALENT not in classes and INCONCLUSIVE in classes
    assert regime["status"] == "INCONCLUSIVE"


def test_cells_with_few_connections_are_shown_but_neither_judged_nor_pooled() -> None:
    regime = _all_active(SyntheticSpec(**QUIET))
    small = [c for c in regime["comparisons"] if c["connections"] < MIN_CONNECTIONS_FOR_MECHANISM]
    assert small and not any(c["judged"] for c in small)
    assert all("not judged" in c["class_reason"] for c in small)
    for pooled in regime["pooled_summary"].values():
        assert min(pooled["cells"]) >= MIN_CONNECTIONS_FOR_MECHANISM
        assert pooled["method"] and "decides nothing" in pooled["note"]


def _comp(cls: str, judged: bool = True) -> dict:
    return {"class": cls, "judged": judged, "class_reason": cls}


def test_a_regime_needs_every_judged_comparison_to_agree() -> None:
    assert judge_regime("r", [_comp(BETTER), _comp(BETTER)], "w")["status"] == "SUPPORTED"
    assert judge_regime("r", [_comp(EQUIVALENT), _comp(WORSE)], "w")["status"] == "NOT SUPPORTED"
    mixed = judge_regime("r", [_comp(BETTER), _comp(EQUIVALENT)], "w")
    assert mixed["status"] == INCONCLUSIVE and "both ways" in mixed["reason"]
    open_ = judge_regime("r", [_comp(EQUIVALENT), _comp(INCONCLUSIVE)], "w")
    assert open_["status"] == INCONCLUSIVE
    # A cell that is not judged neither helps nor hurts.
    only = judge_regime("r", [_comp(EQUIVALENT), _comp(BETTER, judged=False)], "w")
    assert only["status"] == "NOT SUPPORTED"
    assert judge_regime("r", [_comp(BETTER, judged=False)], "w")["status"] == INCONCLUSIVE


@pytest.mark.parametrize("reps", [3, 5, 10])
def test_equivalence_is_declared_at_most_5_percent_of_the_time_at_the_margin(reps: int) -> None:
    # Two one-sided tests at 5%: when the true ratio sits exactly on the margin,
    # "EQUIVALENT" may come out at most 5% of the time (here: paired, 20% noise).
    rng = np.random.default_rng(reps)
    runs = 4000
    diffs = EQUIVALENCE_LOG_MARGIN + rng.normal(0, 0.2, (runs, reps))
    _, lo, hi = paired_bounds(diffs, EQUIVALENCE_CONFIDENCE)
    equivalent = (lo >= -EQUIVALENCE_LOG_MARGIN) & (hi <= EQUIVALENCE_LOG_MARGIN)
    assert equivalent.mean() <= 0.05 + 0.01  # binomial spread of 4,000 runs
