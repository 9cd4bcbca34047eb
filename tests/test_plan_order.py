"""The run's order: repetitions in turn, cells and backends in seeded random permutations."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from bench.measure import scenarios
from bench.measure.config import BenchConfig, ConfigError, build_config, preset_config
from bench.measure.plan import backend_can_hold, plan_trials
from bench.measure.trial import Trial


def _identity(t: Trial) -> tuple:
    """What a trial measures, without where it falls in the order."""
    return (
        t.scenario,
        t.backend,
        t.mode,
        t.idle_connections,
        t.active_connections,
        t.rate_rps_requested,
        t.http_close,
        t.probe_connections,
        t.repetition,
    )


def _cell(t: Trial) -> tuple:
    return _identity(t)[:1] + _identity(t)[2:]


def _fixed_plan(cfg: BenchConfig) -> Counter:
    """The trials of the former fixed order (scenario, repetition, cell, backend, copies)."""
    out: Counter = Counter()
    for name in cfg.scenarios:
        scenario = scenarios.get(name)
        repetitions = min(cfg.repetitions, scenario.max_repetitions or cfg.repetitions)
        for repetition in range(repetitions):
            for cell in scenario.cells(cfg.settings[name], cfg):
                for backend in cell.backends if cell.backends is not None else cfg.backends:
                    if cell.mode != "probe" and not backend_can_hold(
                        backend, cell.total_connections
                    ):
                        continue
                    counts = (cell.idle, cell.active, cell.rate, cell.http_close)
                    probe = cell.probe_connections
                    out[(name, backend, cell.mode, *counts, probe, repetition)] += cell.copies
    return out


@pytest.fixture(params=["quick", "standard"])
def cfg(request: pytest.FixtureRequest) -> BenchConfig:
    return preset_config(request.param).replace(order_seed=12345)


def test_the_plan_holds_the_fixed_plans_trials_exactly(cfg: BenchConfig) -> None:
    trials = plan_trials(cfg)
    assert Counter(_identity(t) for t in trials) == _fixed_plan(cfg)
    assert [t.order_index for t in trials] == list(range(len(trials)))


def test_repetitions_run_in_turn_and_respect_each_scenarios_cap(cfg: BenchConfig) -> None:
    trials = plan_trials(cfg)
    reps = [t.repetition for t in trials]
    assert reps == sorted(reps)
    fd_limit = [t for t in trials if t.scenario == "fd-limit"]
    assert fd_limit and {t.repetition for t in fd_limit} == {0}
    assert {t.repetition for t in trials} == set(range(cfg.repetitions))


def test_a_cells_backends_are_adjacent(cfg: BenchConfig) -> None:
    trials = plan_trials(cfg)
    for _, group in itertools.groupby(trials, key=lambda t: t.repetition):
        runs = [cell for cell, _ in itertools.groupby(group, key=_cell)]
        # Each cell appears as one unbroken run of trials within its repetition.
        assert len(runs) == len(set(runs))


def test_positions_count_zero_to_n_within_each_repetition(cfg: BenchConfig) -> None:
    trials = plan_trials(cfg)
    for _, group in itertools.groupby(trials, key=lambda t: t.repetition):
        positions = [t.position_in_repetition for t in group]
        assert positions == list(range(len(positions)))


def test_the_same_seed_gives_the_same_plan(cfg: BenchConfig) -> None:
    assert plan_trials(cfg) == plan_trials(cfg.replace())


def test_different_seeds_give_different_orders_of_cells_and_backends() -> None:
    cfg = preset_config("quick")
    plans = [plan_trials(cfg.replace(order_seed=seed)) for seed in range(5)]
    orders = {tuple(_identity(t) for t in plan) for plan in plans}
    assert len(orders) == len(plans)
    # Cells move: the first repetition does not always start with the same cell.
    assert len({_cell(plan[0]) for plan in plans}) > 1

    # Backends move within a cell: some cell's backend order differs between seeds.
    def backend_orders(plan: list[Trial]) -> dict[tuple, tuple[str, ...]]:
        out: dict[tuple, list[str]] = {}
        for t in plan:
            out.setdefault(_cell(t), []).append(t.backend)
        return {k: tuple(v) for k, v in out.items()}

    first, second = backend_orders(plans[0]), backend_orders(plans[1])
    assert any(first[k] != second[k] for k in first if len(set(first[k])) > 1)


def test_a_growth_sweeps_counts_are_shuffled() -> None:
    cfg = build_config("quick", scenarios=("idle-scaling",), backends=("epoll",))
    sequences = set()
    for seed in range(6):
        plan = plan_trials(cfg.replace(order_seed=seed))
        sequences.add(tuple((t.mode, t.idle_connections) for t in plan if t.repetition == 0))
    assert len(sequences) > 1


def test_cells_of_several_sweeps_with_the_same_counts_are_one_cell() -> None:
    # quick's idle-scaling sweeps select apart from poll/epoll over the same counts:
    # in the plan they are one cell, so select runs beside epoll, not a sweep away.
    cfg = build_config(
        "quick", scenarios=("idle-scaling",), backends=("select", "poll", "epoll")
    ).replace(order_seed=7)
    trials = plan_trials(cfg)
    groups = [
        (cell, [t.backend for t in run]) for cell, run in itertools.groupby(trials, key=_cell)
    ]
    poll_cells = {cell for cell, backends in groups if "poll" in backends}
    shared = [backends for cell, backends in groups if "select" in backends and cell in poll_cells]
    assert shared and all(sorted(b) == ["epoll", "poll", "select"] for b in shared)


def test_a_negative_seed_is_refused_with_its_remedy() -> None:
    with pytest.raises(ConfigError, match="--order-seed must be a non-negative"):
        build_config("quick", order_seed=-1)
