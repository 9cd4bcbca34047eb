"""Turn a BenchConfig into an ordered list of trials, and estimate how long they take.

Order matters on a noisy machine: repetitions are interleaved across backends
(A B C A B C, not A A A B B B) and each repetition sweeps every cell, so slow
drift (thermal, other tenants) hits every backend alike.

The duration estimate is explicit so that a preset can be checked against its
budget *before* anything starts (``bench run`` prints it and refuses a plan
that does not fit). Its constants were measured on the 2-vCPU machine
(MACHINE_FACTS) and err on the slow side.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.measure.config import SELECT_MAX_CONNECTIONS, BenchConfig

# Fixed cost of one load trial besides warm-up and measurement: start a server
# subprocess and wait for READY, verify it, start the load generator workers,
# stop and reap both. Measured 0.65 s on a quiet 2-vCPU VM, 0.9-1.1 s while
# other work ran (1.4 s at load average 34). A quick run on the quiet VM spaced
# its trials 1.25 s apart (0.6 s overhead + 0.65 s warm-up and window); 0.75 s
# keeps a margin for a machine that is not idle.
TRIAL_OVERHEAD_S = 0.75
# Opening one loopback connection (MACHINE_FACTS: 10,000 in 0.4-0.7 s, plus accept).
CONNECT_S_PER_CONNECTION = 150e-6
# fd-limit probe: server start + connect + one request per connection.
PROBE_OVERHEAD_S = 0.8
PROBE_S_PER_CONNECTION = 300e-6
# After the trials: tidy tables, verdict, charts (matplotlib import + ~6 figures), report.
ANALYSIS_S = 12.0
# Interpreter start-up, imports, machine metadata.
STARTUP_S = 2.0
# Micro benchmarks, by set, when bench.measure.micro does not say itself.
MICRO_S_BY_SET = {"tiny": 4.0, "quick": 12.0, "standard": 60.0, "full": 60.0}


@dataclass(frozen=True)
class Trial:
    """One measurement: a fresh server, one load (or probe), one row in trials.csv."""

    scenario: str
    backend: str
    protocol: str
    mode: str  # "open" | "closed" | "probe"
    idle_connections: int
    active_connections: int
    rate_rps_requested: float | None
    repetition: int
    order_index: int
    warmup_s: float
    measure_s: float
    http_close: bool = False
    # fd-limit only: how many connections the probe offers.
    probe_connections: int = 0

    @property
    def total_connections(self) -> int:
        """Descriptors the trial needs on each side (server and client)."""
        if self.mode == "probe":
            return self.probe_connections
        return self.idle_connections + self.active_connections

    @property
    def cell(self) -> str:
        """Short human label of the cell (the same for every backend and repetition)."""
        if self.mode == "probe":
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

    def estimated_s(self) -> float:
        """Expected wall-clock seconds of this trial on the reference machine."""
        if self.mode == "probe":
            return PROBE_OVERHEAD_S + PROBE_S_PER_CONNECTION * self.probe_connections
        if self.http_close:  # churn: the load generator (or wrk) reconnects per request
            return TRIAL_OVERHEAD_S + self.warmup_s + self.measure_s
        connect_s = CONNECT_S_PER_CONNECTION * self.total_connections
        return TRIAL_OVERHEAD_S + connect_s + self.warmup_s + self.measure_s


@dataclass(frozen=True)
class _Cell:
    scenario: str
    mode: str
    idle: int
    active: int
    rate: float | None
    http_close: bool = False
    probe_connections: int = 0
    backends: tuple[str, ...] | None = None  # None: every configured backend


def backend_can_hold(backend: str, connections: int) -> bool:
    """Whether a backend can serve ``connections`` clients at once (select: FD_SETSIZE)."""
    return backend != "select" or connections <= SELECT_MAX_CONNECTIONS


def _cells(cfg: BenchConfig, scenario: str) -> list[_Cell]:
    k = cfg.idle_active_connections
    if scenario == "idle-scaling":
        open_cells = [
            _Cell(scenario, "open", n, k, cfg.idle_open_rate_rps) for n in cfg.idle_counts
        ]
        closed_cells = [_Cell(scenario, "closed", n, k, None) for n in cfg.idle_closed_counts]
        return open_cells + closed_cells
    if scenario == "active-scaling":
        return [_Cell(scenario, "closed", 0, n, None) for n in cfg.active_counts]
    if scenario == "churn":
        return [_Cell(scenario, "closed", 0, cfg.churn_active_connections, None, http_close=True)]
    if scenario == "fd-limit":
        return [
            _Cell(
                scenario,
                "probe",
                0,
                0,
                None,
                probe_connections=cfg.fd_limit_connections,
                backends=cfg.fd_limit_backends,
            )
        ]
    return []


def plan_trials(cfg: BenchConfig) -> list[Trial]:
    """Every load/probe trial of the run, in the order they will be measured.

    Cells a backend cannot hold (select beyond FD_SETSIZE) are left out except
    in fd-limit, whose point is to go beyond it.
    """
    trials: list[Trial] = []
    for scenario in cfg.scenarios:
        cells = _cells(cfg, scenario)
        if not cells:
            continue
        for repetition in range(cfg.repetitions):
            for cell in cells:
                backends = cell.backends if cell.backends is not None else cfg.backends
                for backend in backends:
                    if cell.mode != "probe" and not backend_can_hold(
                        backend, cell.idle + cell.active
                    ):
                        continue
                    trials.append(
                        Trial(
                            scenario=scenario,
                            backend=backend,
                            protocol=cfg.protocol,
                            mode=cell.mode,
                            idle_connections=cell.idle,
                            active_connections=cell.active,
                            rate_rps_requested=cell.rate,
                            repetition=repetition,
                            order_index=len(trials),
                            warmup_s=cfg.warmup_s,
                            measure_s=cfg.measure_s,
                            http_close=cell.http_close,
                            probe_connections=cell.probe_connections,
                        )
                    )
    return trials


@dataclass(frozen=True)
class PlanEstimate:
    """Where the expected wall-clock time of a run goes."""

    trials_s: float
    micro_s: float
    analysis_s: float
    startup_s: float
    trial_count: int

    @property
    def total_s(self) -> float:
        return self.trials_s + self.micro_s + self.analysis_s + self.startup_s

    def describe(self) -> str:
        return (
            f"{self.trial_count} trials ~{self.trials_s:.0f} s + micro ~{self.micro_s:.0f} s"
            f" + analysis ~{self.analysis_s:.0f} s + start-up ~{self.startup_s:.0f} s"
            f" = ~{self.total_s:.0f} s"
        )


def estimate_plan(cfg: BenchConfig, trials: list[Trial]) -> PlanEstimate:
    """Expected duration of the whole run (trials, micro benchmarks, analysis)."""
    micro_s = MICRO_S_BY_SET.get(cfg.micro_set, 60.0) if "micro" in cfg.scenarios else 0.0
    return PlanEstimate(
        trials_s=sum(t.estimated_s() for t in trials),
        micro_s=micro_s,
        analysis_s=ANALYSIS_S,
        startup_s=STARTUP_S,
        trial_count=len(trials),
    )


def max_connections(trials: list[Trial]) -> int:
    """The largest number of connections any single trial holds at once."""
    return max((t.total_connections for t in trials), default=0)
