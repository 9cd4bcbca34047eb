"""What a benchmark run measures: one frozen BenchConfig, built from a named preset.

The config is the single object that describes a run. It is written whole into
``run.json`` so a run folder says exactly what was asked for, and it is the only
thing the planner reads. What is common to every scenario (backends, named by
their roles in the registry, repetitions, phase lengths, placement, budget) is
declared here per preset;
each scenario declares its own settings per preset in its module
(``bench.measure.scenarios``), and the config carries them under ``settings``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.measure import scenarios as scenario_registry
from bench.measure.machine.quiet import STEAL_SAMPLE_S
from bench.measure.scenarios.idle_scaling import C_URING_QUESTION
from servers import registry

PUBLIC_PRESETS: tuple[str, ...] = ("quick", "standard", "full")
# "tiny" exists for the test suite: seconds, every file produced, numbers meaningless.
HIDDEN_PRESETS: tuple[str, ...] = ("tiny",)


@dataclass(frozen=True)
class BenchConfig:
    """Everything one ``bench run`` measures and how; frozen and JSON-serialisable."""

    preset: str
    scenarios: tuple[str, ...]
    backends: tuple[str, ...]
    repetitions: int
    protocol: str = "http"
    # True when the backends were named (bench run --backend): each is then planned in
    # every cell of the chosen scenarios it can serve, whatever roles the preset's
    # scenarios give their sweeps, and a cell it cannot serve is stated with the reason
    # (bench.measure.plan). False: the preset's roles choose each cell's backends.
    backends_named: bool = False
    # Phase lengths of one trial.
    warmup_s: float = 0.4
    measure_s: float = 1.0
    # Scenario name -> that scenario's settings for this preset.
    settings: Mapping[str, Any] = field(default_factory=dict)
    # Placement: the server on its own CPU, the load generator on the others.
    server_cpu: int = 0
    loadgen_cpus: tuple[int, ...] = ()
    loadgen_workers: int = 1
    # Wall-clock budget of the whole run (seconds); the plan is checked against it.
    budget_s: float = 180.0
    out_dir: str = "results"
    # Seconds to wait for a quiet machine before measuring anyway, with a warning.
    quiet_wait_s: float = 30.0
    # Length of each quiet-machine sample (bench.measure.machine.quiet).
    quiet_sample_s: float = STEAL_SAMPLE_S
    # Seed of the trials' order within each repetition (bench.measure.plan); None:
    # not chosen yet (bench run draws one before planning, so run.json has it).
    order_seed: int | None = None
    # An A/A run (bench.measure.calibration): the same-server family on the preset's
    # idle- and active-scaling cells; run.json's config says so.
    calibrate: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists) for run.json."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> BenchConfig:
        """A copy with some fields changed (the config itself stays frozen)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class _Preset:
    # Roles, resolved against the registry when the config is built: a registered
    # plugin backend joins the presets whose roles admit it.
    backends: registry.Role | registry.Roles
    repetitions: int
    warmup_s: float
    measure_s: float
    budget_s: float
    quiet_wait_s: float = 30.0
    quiet_sample_s: float = STEAL_SAMPLE_S


# The Python loop's backends but io_uring readiness: the level-triggered ones and epoll-et
# (edge vs level). uring-poll (edge-triggered too) is measured in full only: it would add 9
# trials to quick's plan (~188 s of its 180 s) and 85 to standard's (~1,805 s of 1,800 s).
_PYTHON_EVENT_LOOP = registry.PYTHON_MECHANISMS | registry.Role(
    families=(registry.FAMILY_PYTHON_LOOP,), mechanisms=("epoll-et",)
)
_TINY_BACKENDS = registry.Role(
    families=(registry.FAMILY_PYTHON_LOOP,), mechanisms=("select", "epoll")
)


def _presets() -> dict[str, _Preset]:
    return {
        # Budget: 3 minutes end to end on 2 cores, micro benchmarks and charts
        # included. One trial costs ~0.4 s besides its warm-up and measurement
        # (server start, load generator workers, connect, drain), so quick keeps
        # 3 repetitions of the cells that decide each family's verdict (its
        # scenarios name them) and drops the rest (churn, the reference backends,
        # the C twins' closed loop and wider sweeps are in "standard").
        "quick": _Preset(
            _PYTHON_EVENT_LOOP | registry.C_MECHANISMS | C_URING_QUESTION,
            3,
            0.2,
            0.45,
            180.0,
        ),
        # ~26 minutes: the Python event loop but io_uring (epoll-et too), 5 repetitions.
        "standard": _Preset(_PYTHON_EVENT_LOOP, 5, 0.5, 2.0, 30 * 60.0),
        # Every registered backend, idle connections up to 16,000, within an hour
        # (issue 12): 3 repetitions (as quick) and 2 s windows (as standard, 2,000
        # open-loop latency samples at 1,000 req/s) instead of 5 and 5 s, which
        # planned ~10,800 s; the scenarios' full sweeps keep fewer counts.
        "full": _Preset(registry.EVERY_BACKEND, 3, 0.5, 2.0, 3600.0),
        # Numbers meaningless, so no waiting for quiet and a 0.25 s sample (the test suite
        # runs it some forty times).
        "tiny": _Preset(_TINY_BACKENDS, 1, 0.05, 0.2, 60.0, quiet_wait_s=0.0, quiet_sample_s=0.25),
    }


class ConfigError(ValueError):
    """A run was asked for that cannot be measured; the message says why and what to do."""


def preset_config(name: str) -> BenchConfig:
    """The BenchConfig of a named preset; ConfigError for an unknown name."""
    preset = _presets().get(name)
    if preset is None:
        raise ConfigError(f"unknown preset {name!r}: choose one of {', '.join(PUBLIC_PRESETS)}")
    settings = {
        s.name: registry.resolve_roles(s.presets[name])
        for s in scenario_registry.all_scenarios()
        if name in s.presets
    }
    return BenchConfig(
        preset=name,
        scenarios=tuple(settings),
        backends=preset.backends.names(),
        repetitions=preset.repetitions,
        warmup_s=preset.warmup_s,
        measure_s=preset.measure_s,
        settings=settings,
        budget_s=preset.budget_s,
        quiet_wait_s=preset.quiet_wait_s,
        quiet_sample_s=preset.quiet_sample_s,
    )


def build_config(
    preset: str = "quick",
    scenarios: tuple[str, ...] | None = None,
    backends: tuple[str, ...] | None = None,
    repetitions: int | None = None,
    out_dir: str | None = None,
    server_cpu: int = 0,
    allowed_cpus: tuple[int, ...] | None = None,
    budget_s: float | None = None,
    order_seed: int | None = None,
) -> BenchConfig:
    """A preset narrowed by command-line choices, with CPU placement resolved.

    Backends named here are measured in every cell of the chosen scenarios they can
    serve (``BenchConfig.backends_named``). Raises ConfigError (before anything
    starts) for an unknown scenario or
    backend, a scenario the preset has no settings for, a non-positive
    repetition count, a negative order seed or a server CPU that is not ours.
    """
    cfg = preset_config(preset)
    changes: dict[str, Any] = {}
    if scenarios:
        known = scenario_registry.names()
        unknown = [s for s in scenarios if s not in known]
        if unknown:
            raise ConfigError(
                f"unknown scenario {', '.join(unknown)}: choose from {', '.join(known)}"
            )
        chosen = tuple(dict.fromkeys(scenarios))
        missing = [s for s in chosen if s not in cfg.settings]
        if missing:
            has = {s: sorted(scenario_registry.get(s).presets) for s in missing}
            raise ConfigError(
                f"preset {preset!r} has no settings for scenario(s) "
                + "; ".join(f"{s} (defined for: {', '.join(p)})" for s, p in has.items())
                + ": choose one of those presets"
            )
        changes["scenarios"] = chosen
        changes["settings"] = {s: cfg.settings[s] for s in chosen}
    if backends:
        known = registry.names()
        unknown = [b for b in backends if b not in known]
        if unknown:
            raise ConfigError(
                f"unknown backend {', '.join(unknown)}: choose from {', '.join(known)}"
            )
        changes["backends"] = tuple(dict.fromkeys(backends))
        changes["backends_named"] = True
    if repetitions is not None:
        if repetitions < 1:
            raise ConfigError(f"--repetitions must be at least 1, got {repetitions}")
        changes["repetitions"] = repetitions
    if out_dir is not None:
        changes["out_dir"] = out_dir
    if budget_s is not None:
        if not math.isfinite(budget_s) or budget_s <= 0:
            raise ConfigError(f"--budget-s must be a positive number of seconds, got {budget_s}")
        changes["budget_s"] = budget_s
    if order_seed is not None:
        if order_seed < 0:
            raise ConfigError(
                f"--order-seed must be a non-negative integer, got {order_seed}: pass the "
                "order_seed of a run's run.json to repeat its order, or leave it out"
            )
        changes["order_seed"] = order_seed
    changes.update(_placement(server_cpu, allowed_cpus))
    return cfg.replace(**changes)


def _placement(server_cpu: int, allowed_cpus: tuple[int, ...] | None) -> dict[str, Any]:
    """Server on ``server_cpu``, load generator on every other allowed CPU.

    On a single CPU both share it (the run says so); on many cores the load
    generator gets one worker per remaining CPU, capped at 8 because more
    workers than that only add start-up time for the connection counts used here.
    """
    cpus = tuple(sorted(allowed_cpus if allowed_cpus is not None else os.sched_getaffinity(0)))
    if server_cpu not in cpus:
        raise ConfigError(
            f"server CPU {server_cpu} is not available to this process (allowed: {list(cpus)}); "
            f"pass --server-cpu with one of them"
        )
    others = tuple(c for c in cpus if c != server_cpu)
    loadgen_cpus = others if others else (server_cpu,)
    return {
        "server_cpu": server_cpu,
        "loadgen_cpus": loadgen_cpus,
        "loadgen_workers": max(1, min(len(loadgen_cpus), 8)),
    }


def shared_cpu(cfg: BenchConfig) -> bool:
    """True when the server and the load generator run on the same CPU (1-CPU machine)."""
    return cfg.server_cpu in cfg.loadgen_cpus
