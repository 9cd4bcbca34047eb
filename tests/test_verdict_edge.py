"""Edge- against level-triggered epoll per family, on SYNTHETIC data (issue 12, item 4)."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
from fixtures.synthetic_run import SyntheticSpec, synthetic_run_in_memory

from bench.analyse.edge_level import edge_vs_level, judge_cells
from bench.analyse.rules import (
    EDGE_BETTER,
    EDGE_CONFIDENCE,
    EDGE_WORSE,
    EQUIVALENCE_BOUNDS,
    EQUIVALENT,
    FAMILIES_DIFFER,
    INCONCLUSIVE,
    RULES,
)
from bench.analyse.verdict import compute_verdict
from bench.store.results import RunData
from servers import registry

PY = registry.FAMILY_PYTHON_LOOP
C = registry.FAMILY_C
PY_BACKENDS = ("select", "poll", "epoll", "epoll-et")
C_BACKENDS = ("c-select", "c-poll", "c-epoll", "c-epoll-et")
QUIET = {"noise": 0.01, "repetitions": 5, "include_micro": False}


def _edge(spec: SyntheticSpec) -> dict:
    return compute_verdict(synthetic_run_in_memory(spec))["edge_vs_level"]


def _judged_classes(block: dict) -> set[str]:
    return {c["class"] for r in block["regimes"] for c in r["comparisons"] if c["judged"]}


def test_equal_edge_and_level_are_equivalent_in_every_judged_cell() -> None:
    edge = _edge(SyntheticSpec(**QUIET, backends=PY_BACKENDS))
    block = edge["families"][PY]
    assert (block["edge"], block["level"]) == ("epoll-et", "epoll")
    assert _judged_classes(block) == {EQUIVALENT}
    assert block["status"] == EQUIVALENT and edge["status"] == EQUIVALENT
    assert edge["family_agreement"] == "Python only (no other family measured): EQUIVALENT"
    for regime in block["regimes"]:
        for c in regime["comparisons"]:
            assert c["backend"] == "epoll" and c["decision"]["confidence"] == EDGE_CONFIDENCE
            assert c["decision"]["method"].startswith("linear-model")
    assert edge["margin"] == pytest.approx(list(EQUIVALENCE_BOUNDS))


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_few_noisy_repetitions_are_inconclusive(seed: int) -> None:
    spec = SyntheticSpec(noise=0.3, repetitions=3, include_micro=False, backends=PY_BACKENDS,
                         seed=seed)  # fmt: skip
    block = _edge(spec)["families"][PY]
    assert block["status"] == INCONCLUSIVE
    assert EQUIVALENT not in _judged_classes(block)


def test_edge_20_percent_better_is_edge_better() -> None:
    edge = _edge(SyntheticSpec(**QUIET, backends=PY_BACKENDS, edge_ratio=1.2))
    block = edge["families"][PY]
    assert _judged_classes(block) == {EDGE_BETTER}
    assert block["status"] == EDGE_BETTER and edge["status"] == EDGE_BETTER
    assert block["decided_by"] and all("epoll-et vs epoll" in d["comparison"]
                                       for d in block["decided_by"])  # fmt: skip


def test_edge_20_percent_worse_is_edge_worse() -> None:
    block = _edge(SyntheticSpec(**QUIET, backends=PY_BACKENDS, edge_ratio=1 / 1.2))["families"][PY]
    assert block["status"] == EDGE_WORSE


def _both(py_ratio: float, c_ratio: float) -> RunData:
    py = synthetic_run_in_memory(SyntheticSpec(**QUIET, backends=PY_BACKENDS, edge_ratio=py_ratio))
    c = synthetic_run_in_memory(
        SyntheticSpec(**QUIET, backends=C_BACKENDS, edge_ratio=c_ratio, seed=21)
    )
    return replace(py, trials=pd.concat([py.trials, c.trials], ignore_index=True))


def test_families_that_differ_are_named() -> None:
    edge = edge_vs_level(_both(1.2, 1.0))
    assert edge["families"][PY]["status"] == EDGE_BETTER
    assert edge["families"][C]["status"] == EQUIVALENT
    assert edge["families"][C]["reason"].startswith("C, c-epoll-et vs c-epoll:")
    assert edge["status"] == FAMILIES_DIFFER
    assert edge["family_agreement"].startswith("The families differ: Python: edge better (")
    assert "; C: EQUIVALENT (" in edge["family_agreement"]


def test_families_that_agree_say_so() -> None:
    edge = edge_vs_level(_both(1.0, 1.0))
    assert edge["status"] == EQUIVALENT
    assert edge["family_agreement"] == "Python and C agree: EQUIVALENT"


def test_a_family_without_its_edge_backend_is_not_judged() -> None:
    run = _both(1.0, 1.0)
    trials = run.trials[run.trials["backend"] != "c-epoll-et"]
    edge = edge_vs_level(replace(run, trials=trials))
    assert list(edge["families"]) == [PY]


def _c(cls: str, judged: bool = True) -> dict:
    return {"class": cls, "judged": judged, "class_reason": cls}


def test_a_family_needs_every_judged_cell_to_agree() -> None:
    assert judge_cells([_c(EQUIVALENT), _c(EQUIVALENT)])[0] == EQUIVALENT
    assert judge_cells([_c(EDGE_BETTER), _c(EDGE_BETTER, judged=False)])[0] == EDGE_BETTER
    mixed = judge_cells([_c(EDGE_BETTER), _c(EQUIVALENT)])
    assert mixed[0] == INCONCLUSIVE and "different ways" in mixed[1]
    assert judge_cells([_c(EQUIVALENT), _c(INCONCLUSIVE)])[0] == INCONCLUSIVE
    assert judge_cells([_c(EQUIVALENT, judged=False)])[0] == INCONCLUSIVE
    assert judge_cells([])[0] == INCONCLUSIVE
    for name in ("edge_vs_level", "edge_vs_level_family", "edge_vs_level_overall"):
        assert name in RULES


def test_the_edge_backends_growth_is_shown_and_decides_nothing() -> None:
    spec = SyntheticSpec(backends=PY_BACKENDS, include_micro=False)
    edge = _edge(spec)
    growth = edge["families"][PY]["edge_growth"]
    assert growth["in-server wait call (CPU time)"] == "flat"
