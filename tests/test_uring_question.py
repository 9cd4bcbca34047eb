"""The io_uring question on synthetic C-family trials with a known truth (rules/uring.py).

Open-loop idle-scaling at 0, 1,000 and 4,000 idle for c-epoll and at 1,000 for c-epoll-et,
c-uring-poll and c-uring, 3 repetitions in a seeded random order, 3% log-normal noise
and a repetition effect: a backend whose server CPU per request is half its baseline's
must be answered YES, one equal to its baseline NO (equivalent), and cells with too few
repetitions INCONCLUSIVE.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import metrics
from bench.analyse.rules import INCONCLUSIVE
from bench.analyse.rules.uring import URING_DIFFER, URING_NO, URING_RULES, URING_YES
from bench.analyse.uring_question import uring_question
from bench.analyse.verdict import compute_verdict, statuses
from bench.measure.scenarios import idle_scaling
from bench.store import schema
from bench.store.results import RunData, coerce_table
from bench.tables import Mode, TrialStatus

CPU = {"c-epoll": 10.0, "c-epoll-et": 10.0, "c-poll": 12.0, "c-select": 12.0,
       "c-uring-poll": 10.0, "c-uring": 10.0}  # fmt: skip


def _trials(cost: dict[str, float], reps: int = 3, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cells = [(b, n) for b in ("c-epoll", "c-poll") for n in (0, 1000, 4000)]
    cells += [("c-select", n) for n in (0, 500, 1000)]
    cells += [(b, 1000) for b in ("c-epoll-et", "c-uring-poll", "c-uring")]
    rows = []
    for rep in range(reps):
        shift = rng.normal(0, 0.05)
        for pos, i in enumerate(rng.permutation(len(cells))):
            backend, idle = cells[i]
            value = {**CPU, **cost}[backend] * np.exp(shift + rng.normal(0, 0.03))
            rows.append({
                "scenario": idle_scaling.NAME, "backend": backend, "protocol": "http",
                "mode": Mode.OPEN, "idle_connections": idle, "active_connections": 8,
                "rate_rps_requested": 1000.0, "repetition": rep, "order_index": len(rows),
                "position_in_repetition": pos, "status": TrialStatus.OK, "flagged": False,
                metrics.SERVER_CPU_US_PER_REQ.name: value,
                metrics.SERVER_WAIT_US_PER_CALL.name: value / 4,
                metrics.SERVER_REJECTED_FD_SETSIZE.name: 0, metrics.ERRORS.name: 0,
                "connections_requested": idle + 8, metrics.CONNECTIONS_SERVED.name: idle + 8,
            })  # fmt: skip
    table = pd.DataFrame(rows)
    columns = schema.trial_columns()
    return coerce_table(table, {c: columns[c] for c in table.columns if c in columns})


def _run(trials: pd.DataFrame) -> RunData:
    return RunData(Path("synthetic"), {"run_id": "synthetic"}, trials, pd.DataFrame())


def _answers(run: RunData) -> dict[str, dict]:
    return {a["backend"]: a for a in uring_question(run)["answers"]}


def test_half_the_cpu_is_yes_and_the_same_cpu_is_no() -> None:
    run = _run(_trials({"c-uring": 5.0, "c-uring-poll": 10.0}))
    answers = _answers(run)
    assert answers["c-uring"]["baseline"] == "c-epoll"
    assert answers["c-uring-poll"]["baseline"] == "c-epoll-et"
    assert answers["c-uring"]["status"] == URING_YES
    assert answers["c-uring-poll"]["status"] == URING_NO
    idle = answers["c-uring"]["regimes"][0]
    ratio = idle["comparisons"][0]["decision"]["ratio"]
    assert idle["regime"] == "idle-heavy" and ratio == pytest.approx(2.0, rel=0.1)
    # No all-active cell was measured: the answer rests on the judged regime only.
    assert not answers["c-uring"]["regimes"][1]["judged"]
    assert uring_question(run)["status"] == URING_DIFFER


def test_one_repetition_cannot_answer() -> None:
    answers = _answers(_run(_trials({"c-uring": 5.0}, reps=1)))
    assert answers["c-uring"]["status"] == INCONCLUSIVE


def test_a_run_without_io_uring_says_so_and_the_verdict_holds_the_answer() -> None:
    trials = _trials({"c-uring": 5.0, "c-uring-poll": 5.0})
    verdict = compute_verdict(_run(trials))
    assert verdict["uring"]["status"] == URING_YES
    assert statuses(verdict)["io_uring"] == URING_YES
    without = trials[~trials["backend"].isin(["c-uring", "c-uring-poll"])]
    q = uring_question(_run(without))
    assert q["answers"] == [] and q["status"] == INCONCLUSIVE
    assert set(q["rules"]) <= set(URING_RULES) | {"regimes", "mechanism_cells"}
