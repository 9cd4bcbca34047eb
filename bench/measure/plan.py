"""Turn a BenchConfig into an ordered list of trials, and estimate how long they take.

Order matters on a noisy machine. Repetitions run one after the other, each
holding every cell once (a cell: scenario, mode and connection counts, all
scenarios' cells mixed), so slow drift (thermal, other tenants) hits every
backend alike. Within a repetition the cells run in a seeded random
permutation, and the backends of a cell in another, adjacent in time so a
repetition pairs them closely: a fixed order would confound a trial's position
(warm caches, a neighbour's schedule, drift within the repetition) with what is
measured, such as the descriptor count of a growth sweep. The seed is
``BenchConfig.order_seed`` (recorded in run.json); each trial keeps its
``position_in_repetition`` so the analysis can account for position.

The duration estimate is explicit so that a preset can be checked against its
budget *before* anything starts (``bench run`` prints it and refuses a plan
that does not fit). Its constants were measured on a 2-vCPU VM and err on the
slow side.
"""

from __future__ import annotations

import dataclasses
import random
import resource
import secrets
from dataclasses import dataclass

from bench.measure import scenarios
from bench.measure.config import BenchConfig
from bench.measure.trial import Cell, Trial
from bench.tables import Mode
from servers import registry

# After the trials: tidy tables, verdict, charts (matplotlib import + ~6 figures), report.
ANALYSIS_S = 12.0
# Interpreter start-up, imports, machine metadata.
STARTUP_S = 2.0


def server_nofile() -> int | None:
    """RLIMIT_NOFILE a server runs with: the hard limit (servers raise their soft limit to
    it), None when unlimited."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard if hard != resource.RLIM_INFINITY else soft
    return None if limit == resource.RLIM_INFINITY else limit


def max_client_connections(backend: str) -> int | None:
    """Most clients a backend can hold at once, None: no cap besides RLIMIT_NOFILE.

    select: below FD_SETSIZE (descriptor numbers); HAProxy: its maxconn, two
    descriptors per client (haproxy-select 499, the others ~RLIMIT_NOFILE / 2).
    """
    capacity = registry.get(backend).client_capacity(server_nofile())
    return None if capacity is None else capacity[0]


def backend_can_hold(backend: str, connections: int) -> bool:
    cap = max_client_connections(backend)
    return cap is None or connections <= cap


def cannot_serve(backend: str, cell: Cell, protocol: str) -> str | None:
    """Why ``backend`` cannot serve ``cell`` over ``protocol``, None when it can. A probe
    cell offers more connections than a backend holds on purpose: only its protocol counts."""
    connections = 0 if cell.mode == Mode.PROBE else cell.total_connections
    return registry.get(backend).cannot_serve(protocol, connections, server_nofile())


@dataclass(frozen=True)
class Skip:
    """Cells of one scenario a backend named with --backend cannot serve, for one reason."""

    backend: str
    scenario: str
    reason: str
    connections: tuple[int, ...]
    """The connections of each cell left out."""

    def describe(self) -> str:
        counts = sorted(set(self.connections))
        return (
            f"{self.backend} is not planned in {len(self.connections)} {self.scenario} "
            f"cell(s) of {', '.join(str(n) for n in counts)} connections: {self.reason}"
        )


def fresh_order_seed() -> int:
    """A new seed for the order of a run's trials (``bench run`` records it in run.json)."""
    return secrets.randbits(32)


def _merged_cells(cells: list[Cell], run_backends: tuple[str, ...]) -> list[Cell]:
    """One cell per scenario, mode and counts, with the backends of every sweep that holds it.

    A scenario may sweep the same counts in several sweeps (select alone, then poll
    and epoll): their trials are one cell, so its backends run side by side.
    """
    merged: dict[Cell, list[str]] = {}
    for cell in cells:
        backends = merged.setdefault(dataclasses.replace(cell, backends=None), [])
        for backend in cell.backends if cell.backends is not None else run_backends:
            if backend not in backends:
                backends.append(backend)
    return [dataclasses.replace(key, backends=tuple(b)) for key, b in merged.items()]


def _scenario_cells(cfg: BenchConfig, name: str) -> list[Cell]:
    """The scenario's cells in ``cfg``, each with the backends it plans (not yet checked
    against what they can serve).

    Backends named with --backend (``cfg.backends_named``) join every cell the
    scenario plans for any registered backend; otherwise each sweep's roles choose.
    """
    scenario = scenarios.get(name)
    if not cfg.backends_named:
        return _merged_cells(scenario.cells(cfg.settings[name], cfg), cfg.backends)
    every = cfg.replace(backends=registry.names())
    cells = _merged_cells(scenario.cells(cfg.settings[name], every), every.backends)
    return [dataclasses.replace(cell, backends=cfg.backends) for cell in cells]


def _served(cell: Cell, protocol: str) -> tuple[str, ...]:
    """The cell's backends that can serve it (probe cells: whatever their limits)."""
    return tuple(b for b in cell.backends or () if cannot_serve(b, cell, protocol) is None)


def plan_skips(cfg: BenchConfig) -> list[Skip]:
    """The cells a backend named with --backend, or a plugin backend a preset's roles
    chose, cannot serve, with the reason.

    A preset's built-in backends are left out of cells they cannot hold without a
    word (its scenarios' sweeps are chosen knowing it: select's own counts, HAProxy's).
    """
    grouped: dict[tuple[str, str, str], list[int]] = {}
    for name in cfg.scenarios:
        for cell in _scenario_cells(cfg, name):
            for backend in cell.backends or ():
                if not cfg.backends_named and registry.get(backend).built_in:
                    continue
                reason = cannot_serve(backend, cell, cfg.protocol)
                if reason is not None:
                    key = (backend, name, reason)
                    grouped.setdefault(key, []).append(cell.total_connections)
    return [Skip(b, s, r, tuple(n)) for (b, s, r), n in grouped.items()]


def plan_trials(cfg: BenchConfig) -> list[Trial]:
    """Every load/probe trial of the run, in the order they will be measured.

    Repetition r holds every cell of every scenario that has an r-th repetition
    (a scenario's ``max_repetitions`` caps its own); within it the cells, then
    each cell's backends, are permuted by a generator seeded with
    ``cfg.order_seed``: the same seed gives the same plan. None draws a fresh
    seed (an order nobody can reproduce; ``bench run`` resolves it first).
    Cells a backend cannot serve (another protocol; select beyond FD_SETSIZE,
    HAProxy beyond its maxconn) are left out except in probe cells, whose point
    is to go beyond the limits (``plan_skips`` says which, for named backends).
    """
    seed = cfg.order_seed if cfg.order_seed is not None else fresh_order_seed()
    rng = random.Random(seed)
    cells: list[tuple[str, Cell, int]] = []
    for name in cfg.scenarios:
        scenario = scenarios.get(name)
        repetitions = min(cfg.repetitions, scenario.max_repetitions or cfg.repetitions)
        for cell in _scenario_cells(cfg, name):
            cells.append((name, cell, repetitions))
    trials: list[Trial] = []
    for repetition in range(max((r for _, _, r in cells), default=0)):
        in_repetition = [(name, cell) for name, cell, r in cells if repetition < r]
        rng.shuffle(in_repetition)
        position = 0
        for name, cell in in_repetition:
            backends = list(_served(cell, cfg.protocol)) * cell.copies
            rng.shuffle(backends)
            for backend in backends:
                trials.append(
                    Trial(
                        scenario=name,
                        backend=backend,
                        protocol=cfg.protocol,
                        mode=cell.mode,
                        idle_connections=cell.idle,
                        active_connections=cell.active,
                        rate_rps_requested=cell.rate,
                        repetition=repetition,
                        order_index=len(trials),
                        position_in_repetition=position,
                        warmup_s=cfg.warmup_s,
                        measure_s=cfg.measure_s,
                        http_close=cell.http_close,
                        probe_connections=cell.probe_connections,
                    )
                )
                position += 1
    return trials


def trial_estimate_s(trial: Trial) -> float:
    """Expected wall-clock seconds of one trial on the reference machine."""
    return scenarios.get(trial.scenario).estimate_s(trial)


@dataclass(frozen=True)
class PlanEstimate:
    """Where the expected wall-clock time of a run goes."""

    trials_s: float
    in_process_s: float
    analysis_s: float
    startup_s: float
    trial_count: int

    @property
    def total_s(self) -> float:
        return self.trials_s + self.in_process_s + self.analysis_s + self.startup_s

    def describe(self) -> str:
        return (
            f"{self.trial_count} trials ~{self.trials_s:.0f} s + micro ~{self.in_process_s:.0f} s"
            f" + analysis ~{self.analysis_s:.0f} s + start-up ~{self.startup_s:.0f} s"
            f" = ~{self.total_s:.0f} s"
        )


def plugin_trials_s(cfg: BenchConfig, trials: list[Trial]) -> tuple[float, tuple[str, ...]]:
    """Expected seconds of the trials of plugin backends (not ``built_in``) the preset
    chose, and their names. A preset's budget is set for the built-in backends: these
    extend it, so a registered plugin joins the default run instead of pushing it over.
    Backends named with --backend get no such allowance."""
    if cfg.backends_named:
        return 0.0, ()
    added = [t for t in trials if not registry.get(t.backend).built_in]
    names = tuple(dict.fromkeys(t.backend for t in added))
    return sum(trial_estimate_s(t) for t in added), names


def estimate_plan(cfg: BenchConfig, trials: list[Trial]) -> PlanEstimate:
    """Expected duration of the whole run (trials, in-process benchmarks, analysis)."""
    in_process_s = 0.0
    for name in cfg.scenarios:
        scenario = scenarios.get(name)
        if scenario.in_process_estimate_s is not None:
            in_process_s += scenario.in_process_estimate_s(cfg.settings[name])
    return PlanEstimate(
        trials_s=sum(trial_estimate_s(t) for t in trials),
        in_process_s=in_process_s,
        analysis_s=ANALYSIS_S,
        startup_s=STARTUP_S,
        trial_count=len(trials),
    )


def max_connections(trials: list[Trial]) -> int:
    """The largest number of connections any single trial holds at once."""
    return max((t.total_connections for t in trials), default=0)
