"""What a benchmark run measures: one frozen BenchConfig, built from a named preset.

The config is the single object that describes a run. It is written whole into
``run.json`` so a run folder says exactly what was asked for, and it is the only
thing the scenario planner reads: there are no loose flags copied around.

Numbers in the presets come from MACHINE_FACTS (2 vCPU VM):
- the slowest backend in the largest quick cell (poll, 4,000 idle + 8 active)
  serves ~4.6k req/s closed loop, but in open loop requests arrive one by one,
  so each one pays a whole poll() scan (~360 us at 4,000 fds, MACHINE_FACTS)
  plus ~100 us of Python: ~400 us/request measured here. At 2,000 req/s that
  is 80% of a core, and on a shared machine trials fell short of the rate; at
  1,000 req/s every backend delivers it with headroom, so latency and CPU
  differences come from the mechanism, not from one backend being overloaded;
- select refuses descriptors numbered >= FD_SETSIZE (1024), so its cells stop
  below that (see ``SELECT_MAX_CONNECTIONS``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from servers import config as servers_config

# The kernel's FD_SETSIZE for glibc: select.select refuses fd numbers >= this.
FD_SETSIZE = 1024
# Descriptors a server holds besides client sockets (stdio, listening socket,
# control channel, a reserve descriptor for the EMFILE trick, wakeup pipes...).
SERVER_RESERVED_FDS = 16
# Largest client connection count (idle + active) a select server can hold.
SELECT_MAX_CONNECTIONS = FD_SETSIZE - SERVER_RESERVED_FDS

# The servers package is the one place that lists backends.
EVENT_LOOP_BACKENDS: tuple[str, ...] = servers_config.EVENT_LOOP_BACKENDS
REFERENCE_BACKENDS: tuple[str, ...] = servers_config.REFERENCE_BACKENDS
ALL_BACKENDS: tuple[str, ...] = servers_config.BACKENDS
ALL_SCENARIOS: tuple[str, ...] = ("idle-scaling", "active-scaling", "fd-limit", "churn", "micro")
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
    # Phase lengths of one trial.
    warmup_s: float = 0.4
    measure_s: float = 1.0
    # idle-scaling: N idle connections + K active ones.
    idle_counts: tuple[int, ...] = (0, 250, 500, 1000, 2000, 4000)
    idle_active_connections: int = 8
    idle_open_rate_rps: float = 1000.0
    # The closed-loop variant of idle-scaling uses fewer cells (budget).
    idle_closed_counts: tuple[int, ...] = (0, 1000, 4000)
    # active-scaling: every connection active, closed loop.
    active_counts: tuple[int, ...] = (8, 100, 500, 2000)
    # fd-limit: select (and contrasts) offered more connections than FD_SETSIZE.
    fd_limit_connections: int = 1100
    fd_limit_backends: tuple[str, ...] = ("select", "poll", "epoll")
    # churn: one new connection per request (HTTP/1.0-style close), closed loop.
    churn_active_connections: int = 8
    # micro: which set bench.measure.micro.run_micro runs.
    micro_set: str = "quick"
    # Placement: the server on its own CPU, the load generator on the others.
    server_cpu: int = 0
    loadgen_cpus: tuple[int, ...] = ()
    loadgen_workers: int = 1
    # Wall-clock budget of the whole run (seconds); the plan is checked against it.
    budget_s: float = 180.0
    out_dir: str = "results"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists) for run.json."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> BenchConfig:
        """A copy with some fields changed (the config itself stays frozen)."""
        return dataclasses.replace(self, **changes)


def _preset_quick() -> BenchConfig:
    # Budget: 3 minutes end to end on 2 cores, micro benchmarks and charts included.
    # One trial costs 0.65-1.1 s besides its warm-up and measurement (server start,
    # load generator workers, connect, drain), so quick keeps 3 repetitions of
    # the cells that decide the verdict and drops the rest (epoll-et, the
    # reference backends and wider sweeps are in "standard").
    return BenchConfig(
        preset="quick",
        scenarios=ALL_SCENARIOS,
        backends=("select", "poll", "epoll"),
        repetitions=3,
        warmup_s=0.2,
        measure_s=0.45,
        # select needs three counts below FD_SETSIZE for a slope; 4,000 is the
        # largest cell of MACHINE_FACTS. 2,000 is in "standard".
        idle_counts=(0, 500, 1000, 4000),
        # The closed-loop variant on the same counts: the verdict judges the
        # in-server wait-call cost there (in open loop most of a wait call is
        # sleep until the next request).
        idle_closed_counts=(0, 500, 1000, 4000),
        # All-active at 100 and at the largest count select can hold; all-active
        # with 8 connections is the closed-loop idle-scaling cell at 0 idle,
        # which the verdict pools in.
        active_counts=(100, 1000),
        fd_limit_backends=("select", "epoll"),
        micro_set="quick",
        budget_s=180.0,
    )


def _preset_standard() -> BenchConfig:
    # ~22 minutes: every event-loop backend (epoll-et too), 5 repetitions, longer windows.
    return BenchConfig(
        preset="standard",
        scenarios=ALL_SCENARIOS,
        backends=EVENT_LOOP_BACKENDS,
        repetitions=5,
        warmup_s=0.5,
        measure_s=2.0,
        idle_counts=(0, 250, 500, 1000, 2000, 4000, 8000),
        idle_closed_counts=(0, 500, 1000, 4000, 8000),
        active_counts=(8, 100, 500, 1000, 2000),
        micro_set="standard",
        budget_s=30 * 60.0,
    )


def _preset_full() -> BenchConfig:
    # Hours: reference backends too, idle connections up to 16,000.
    return BenchConfig(
        preset="full",
        scenarios=ALL_SCENARIOS,
        backends=ALL_BACKENDS,
        repetitions=5,
        warmup_s=1.0,
        measure_s=5.0,
        idle_counts=(0, 250, 500, 1000, 2000, 4000, 8000, 12000, 16000),
        idle_closed_counts=(0, 500, 1000, 2000, 4000, 8000, 16000),
        active_counts=(8, 25, 50, 100, 200, 500, 1000, 2000),
        fd_limit_backends=("select", "poll", "epoll"),
        micro_set="full",
        budget_s=3 * 3600.0,
    )


def _preset_tiny() -> BenchConfig:
    # For tests: every scenario and every output file, in seconds. Numbers meaningless.
    return BenchConfig(
        preset="tiny",
        scenarios=ALL_SCENARIOS,
        backends=("select", "epoll"),
        repetitions=1,
        warmup_s=0.1,
        measure_s=0.3,
        idle_counts=(0, 50),
        idle_open_rate_rps=300.0,
        idle_closed_counts=(0,),
        active_counts=(4,),
        fd_limit_connections=1040,
        fd_limit_backends=("select",),
        churn_active_connections=2,
        micro_set="tiny",
        budget_s=60.0,
    )


_PRESETS = {
    "quick": _preset_quick,
    "standard": _preset_standard,
    "full": _preset_full,
    "tiny": _preset_tiny,
}


class ConfigError(ValueError):
    """A run was asked for that cannot be measured; the message says why and what to do."""


def preset_config(name: str) -> BenchConfig:
    """The BenchConfig of a named preset; ConfigError for an unknown name."""
    try:
        return _PRESETS[name]()
    except KeyError:
        raise ConfigError(
            f"unknown preset {name!r}: choose one of {', '.join(PUBLIC_PRESETS)}"
        ) from None


def build_config(
    preset: str = "quick",
    scenarios: tuple[str, ...] | None = None,
    backends: tuple[str, ...] | None = None,
    repetitions: int | None = None,
    out_dir: str | None = None,
    server_cpu: int = 0,
    allowed_cpus: tuple[int, ...] | None = None,
    budget_s: float | None = None,
) -> BenchConfig:
    """A preset narrowed by command-line choices, with CPU placement resolved.

    Raises ConfigError (before anything starts) for an unknown scenario or
    backend, a non-positive repetition count or a server CPU that is not ours.
    """
    cfg = preset_config(preset)
    changes: dict[str, Any] = {}
    if scenarios:
        unknown = [s for s in scenarios if s not in ALL_SCENARIOS]
        if unknown:
            raise ConfigError(
                f"unknown scenario {', '.join(unknown)}: choose from {', '.join(ALL_SCENARIOS)}"
            )
        changes["scenarios"] = tuple(dict.fromkeys(scenarios))
    if backends:
        unknown = [b for b in backends if b not in ALL_BACKENDS]
        if unknown:
            raise ConfigError(
                f"unknown backend {', '.join(unknown)}: choose from {', '.join(ALL_BACKENDS)}"
            )
        chosen = tuple(dict.fromkeys(backends))
        changes["backends"] = chosen
        changes["fd_limit_backends"] = tuple(b for b in cfg.fd_limit_backends if b in chosen) or (
            ("select",) if "select" in chosen else chosen[:1]
        )
    if repetitions is not None:
        if repetitions < 1:
            raise ConfigError(f"--repetitions must be at least 1, got {repetitions}")
        changes["repetitions"] = repetitions
    if out_dir is not None:
        changes["out_dir"] = out_dir
    if budget_s is not None:
        changes["budget_s"] = budget_s
    changes.update(_placement(server_cpu, allowed_cpus))
    return cfg.replace(**changes)


def _placement(server_cpu: int, allowed_cpus: tuple[int, ...] | None) -> dict[str, Any]:
    """Server on ``server_cpu``, load generator on every other allowed CPU.

    On a single CPU both share it (the run says so); on many cores the load
    generator gets one worker per remaining CPU, capped at 8 because more
    workers than that only add start-up time for the connection counts used here.
    """
    import os

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
