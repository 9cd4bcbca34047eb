"""One planned measurement (a ``Trial``) and the cell it belongs to (a ``Cell``).

A scenario module turns its settings into cells; the planner repeats each cell
for every backend and repetition, in a seeded random order within each
repetition. Nothing here knows a scenario by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.tables import Mode
from servers.registry import Role, Roles, resolve_roles

# Fixed cost of one load trial besides warm-up and measurement: start a server
# subprocess and wait for READY, verify it, start the load generator workers,
# stop and reap both. Five default runs on a quiet 2-vCPU VM (2026-12-05,
# started_utc differences in trials.csv, 0.65 s of warm-up and window per trial)
# spaced trials with 8 connections a median 1.01-1.02 s apart (0.36-0.37 s of
# overhead), those with 4,008 connections 1.10-1.14 s apart (~25-30 us per
# connection held); five more the next day on the same VM, slower, 1.12-1.20 s
# (0.47-0.55 s) and 1.25-1.35 s. 0.45 s and 40 us sit between the two days.
TRIAL_OVERHEAD_S = 0.45
CONNECT_S_PER_CONNECTION = 40e-6


def _mode(value: str) -> Mode:
    """``value`` as a Mode (a scenario may name it as text); a clear error otherwise."""
    try:
        return Mode(value)
    except ValueError:
        raise ValueError(
            f"unknown mode {value!r}: a cell's mode is one of {', '.join(Mode)}"
        ) from None


@dataclass(frozen=True)
class Cell:
    """A point of a scenario's sweep, the same for every backend and repetition."""

    scenario: str
    mode: Mode
    idle: int
    active: int
    rate: float | None
    http_close: bool = False
    # Probe cells only: how many connections the probe offers.
    probe_connections: int = 0
    # None: every configured backend; else only these (in this order).
    backends: tuple[str, ...] | None = None
    # Trials per backend in each repetition: separate server processes side by side, for
    # a scenario whose unit of replication is the process (idle-steps).
    copies: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", _mode(self.mode))

    @property
    def total_connections(self) -> int:
        return self.probe_connections if self.mode == Mode.PROBE else self.idle + self.active


# A scenario's choice of backends: None, every backend of the run; else the backends
# these roles admit (bench.measure.config resolves them into names when it builds a
# run's config), or these names, when the run has them.
Backends = tuple[str, ...] | Role | Roles | None


@dataclass(frozen=True)
class Sweep:
    """One mode over a list of idle (or active) counts for some backends."""

    mode: Mode  # OPEN or CLOSED
    counts: tuple[int, ...]
    backends: Backends = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", _mode(self.mode))

    def backends_in(self, run_backends: tuple[str, ...]) -> tuple[str, ...] | None:
        """The sweep's backends the run measures, None for all, () for none."""
        return backends_in(self.backends, run_backends)


def backends_in(chosen: Backends, run_backends: tuple[str, ...]) -> tuple[str, ...] | None:
    """``chosen``'s backends the run measures (in their order), None for all, () for none."""
    if chosen is None:
        return None
    return tuple(b for b in resolve_roles(chosen) if b in run_backends)


@dataclass(frozen=True)
class Trial:
    """One measurement: a fresh server, one load (or probe), one row in trials.csv."""

    scenario: str
    backend: str
    protocol: str
    mode: Mode
    idle_connections: int
    active_connections: int
    rate_rps_requested: float | None
    repetition: int
    # Index in the whole run's order, and in its repetition's (0-based).
    order_index: int
    position_in_repetition: int
    warmup_s: float
    measure_s: float
    http_close: bool = False
    probe_connections: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", _mode(self.mode))

    @property
    def total_connections(self) -> int:
        """Descriptors the trial needs on each side (server and client)."""
        if self.mode == Mode.PROBE:
            return self.probe_connections
        return self.idle_connections + self.active_connections

    @property
    def cell(self) -> str:
        """Short human label of the cell (the same for every backend and repetition)."""
        if self.mode == Mode.PROBE:
            return f"{self.probe_connections} conns"
        rate = f" @{self.rate_rps_requested:g}/s" if self.rate_rps_requested else ""
        close = " close" if self.http_close else ""
        return (
            f"{self.mode} idle={self.idle_connections} active={self.active_connections}"
            f"{rate}{close}"
        )

    @property
    def slug(self) -> str:
        """File-name-safe identifier, unique within a run (order index first so names sort)."""
        n = self.total_connections
        return (
            f"{self.order_index:04d}_{self.scenario}_{self.backend}_{self.mode}"
            f"_i{self.idle_connections}_a{self.active_connections}_n{n}_r{self.repetition}"
        )


def load_trial_estimate_s(trial: Trial) -> float:
    """Expected seconds of a trial driven by the load generator (most scenarios)."""
    connect_s = CONNECT_S_PER_CONNECTION * trial.total_connections
    return TRIAL_OVERHEAD_S + connect_s + trial.warmup_s + trial.measure_s
