"""ready-fraction and churn: the cells they plan, the churn analysis, and tiny runs of both.

The session's shared tiny run (``python -m bench run --preset tiny``) checks the
plumbing: every row ok, churn cells not all flagged, the new column filled.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures.tiny_run import TinyRun

from bench.analyse.churn import churn
from bench.measure.config import ConfigError, build_config
from bench.measure.machine.disturbance import DISTURBED
from bench.measure.plan import plan_trials
from bench.measure.scenarios import churn as churn_scenario
from bench.measure.scenarios import ready_fraction
from bench.store import schema
from bench.store.results import load

# The shared run's backends these checks count cells of (the tiny preset's).
TINY_BACKENDS = ("select", "epoll")


def _plan(preset: str, scenario: str, backends: tuple[str, ...] | None = None) -> list:
    cfg = build_config(preset, scenarios=(scenario,), backends=backends, repetitions=1)
    return plan_trials(cfg)


def test_ready_fraction_plans_shares_of_two_registered_counts_select_only_at_1000() -> None:
    trials = _plan("standard", ready_fraction.NAME)
    assert {t.mode for t in trials} == {"closed"}
    cells = {(t.backend, t.idle_connections + t.active_connections, t.active_connections)
             for t in trials}  # fmt: skip
    for n in (1000, 4000):
        actives = [round(s * n) for s in (0.01, 0.05, 0.2, 0.5, 1.0)]
        for backend in ("poll", "epoll"):
            assert {a for b, m, a in cells if b == backend and m == n} == set(actives)
    assert {m for b, m, _ in cells if b == "select"} == {1000}
    # The Python family only (epoll-et is in standard's backends, not in this scenario).
    assert {t.backend for t in trials} == {"select", "poll", "epoll"}
    assert len(trials) == 5 * 3 + 5 * 2


def test_ready_fraction_is_not_in_quick_and_has_a_tiny_setting() -> None:
    with pytest.raises(ConfigError, match="ready-fraction"):
        build_config("quick", scenarios=(ready_fraction.NAME,))
    tiny = _plan("tiny", ready_fraction.NAME, ("select", "epoll"))
    assert {(t.idle_connections, t.active_connections) for t in tiny} == {
        (36, 4),
        (20, 20),
        (0, 40),
    }


def test_churn_plans_open_loop_new_connections_beside_idle_sets() -> None:
    trials = _plan("standard", churn_scenario.NAME)
    assert {t.mode for t in trials} == {"open"} and all(t.http_close for t in trials)
    assert {t.rate_rps_requested for t in trials} == {250.0}
    assert {t.idle_connections for t in trials} == {0, 1000, 4000}
    assert {t.idle_connections for t in trials if t.backend == "select"} == {0, 1000}
    assert {t.backend for t in trials} == {"select", "poll", "epoll"}
    assert churn_scenario.CPU_PER_CONN in schema.TRIAL_COLUMNS
    full = _plan("full", churn_scenario.NAME)
    # One per mechanism of the Python and C families (c-select-big: select past
    # FD_SETSIZE): no edge-triggered variant, no other family.
    mechanism_backends = {"select", "poll", "epoll", "c-select", "c-poll", "c-epoll",
                          "c-select-big"}  # fmt: skip
    assert {t.backend for t in full} == mechanism_backends


def test_cpu_per_connection_is_window_cpu_over_accepted() -> None:
    raw = {"server_edges": {"start": {"monotonic_s": 10.0}, "end": {"monotonic_s": 12.0}}}
    cols = {"connections_served": 500, "server_busy_fraction": 0.25}
    assert churn_scenario.cpu_per_connection_us(cols, raw) == pytest.approx(1000.0)
    assert churn_scenario.cpu_per_connection_us({"connections_served": 0}, raw) is None


def _churn_trials(idle_cost: dict[str, float]) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    rows = []
    for idle in (0, 1000, 4000):
        for rep in range(5):
            for backend, per_idle in idle_cost.items():
                if backend == "select" and idle > 1000:
                    continue
                cpu = (120 + per_idle * idle) * rng.lognormal(0, 0.03)
                rows.append(
                    {
                        "scenario": "churn", "backend": backend, "mode": "open",
                        "idle_connections": idle, "active_connections": 8, "repetition": rep,
                        "status": "ok", "flagged": False, "server_cpu_us_per_conn": cpu,
                    }
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_churn_answers_yes_when_epoll_is_cheaper_at_every_idle_level() -> None:
    out = churn(_churn_trials({"select": 0.5, "poll": 0.6, "epoll": 0.0}))
    assert out["answer"] == "YES"
    python = out["families"][0]
    zero = next(lv for lv in python["levels"] if lv["idle_connections"] == 0)
    assert all(c["class"] == "EQUIVALENT" for c in zero["comparisons"])  # shown, decides nothing
    assert out["sentence"].startswith("Does epoll's advantage survive churn? YES.")
    assert set(out["rules"]) == {"churn_cell", "churn"}


def test_churn_answers_no_when_the_idle_sets_cost_epoll_as_much() -> None:
    assert churn(_churn_trials({"select": 0.3, "poll": 0.3, "epoll": 0.3}))["answer"] == "NO"


def test_churn_without_usable_rows_is_inconclusive() -> None:
    trials = _churn_trials({"select": 0.5, "epoll": 0.0}).assign(flagged=True)
    out = churn(trials)
    assert out["answer"] == "INCONCLUSIVE" and out["families"] == []


def _shared_rows(tiny_run: TinyRun, scenario: str) -> pd.DataFrame:
    trials = load(tiny_run.path).trials
    return trials[(trials["scenario"] == scenario) & trials["backend"].isin(TINY_BACKENDS)]


@pytest.mark.slow
def test_a_tiny_ready_fraction_run_measures_every_cell(tiny_run: TinyRun) -> None:
    trials = _shared_rows(tiny_run, ready_fraction.NAME)
    assert len(trials) == 6 and (trials["status"] == "ok").all()
    assert (trials["throughput_rps"] > 0).sum() >= 5  # a busy machine may stall one


@pytest.mark.slow
def test_a_tiny_churn_run_is_not_all_flagged_and_has_cpu_per_connection(
    tiny_run: TinyRun,
) -> None:
    trials = _shared_rows(tiny_run, churn_scenario.NAME)
    assert len(trials) == 4 and (trials["status"] == "ok").all()
    # Flagged for its own sake, not for other work on the machine ("disturbed": another
    # process's CPU beside the tiny run says nothing about churn).
    reasons = [str(text) for text in trials["flag_reasons"].fillna("")]
    own = [[r for r in text.split(";") if r and not r.startswith(DISTURBED)] for text in reasons]
    assert not all(own), reasons
    assert (trials[churn_scenario.CPU_PER_CONN].astype(float) > 0).all()
