"""Synthetic trial tables with a known truth, shaped like a preset's idle- and active-scaling cells.

What the A/A calibration measures on a real machine (``bench run --calibrate``),
simulated: one family's select, poll and epoll backends in the cells the preset
plans for the Python family (``bench.measure.calibration.family_config``), the
same repetitions, with the nuisances a real run has:

- multiplicative (log-normal) noise, its sigma drawn per cell and metric from
  ``noise`` (10-30%: repeated cells on the 2-vCPU reference VM agree to about
  10-15% (``bench.analyse.rules``), and four A/A runs of the default cells read
  identical servers' growth over 0-4,000 idle anywhere from -25% to +39%);
- a repetition effect shared by every trial of a repetition;
- drift with the trial's position within its repetition (the order of cells,
  and of backends within a cell, is a seeded random permutation per
  repetition, recorded in ``position_in_repetition``);
- outliers: a share of trials whose every cost is multiplied by
  ``outlier_factor`` (steal, preemption), throughput divided by it.

The truth is every backend identical (an A/A family) unless ``growth`` injects
an O(N) term into a backend's in-server wait CPU per call and server CPU per
request: +g at ``growth_at`` idle connections, linear in N. The tests of each
rule's false-call rate and power (``tests/test_false_call_rates.py``) run the
verdict's family functions on these tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench import metrics
from bench.measure.calibration import family_config
from bench.measure.config import preset_config
from bench.measure.plan import plan_trials
from bench.measure.scenarios import idle_steps
from bench.store import schema
from bench.store.results import coerce_table
from bench.tables import Mode, TrialStatus

# Mechanisms of the simulated family: the verdict's subject and comparators.
MECHANISMS = ("select", "poll", "epoll")
# Columns the analysis reads that a trial table may not declare yet (other work adds them).
EXTRA_COLUMNS = {
    "position_in_repetition": "Int64", metrics.MACHINE_CPU_US_PER_REQ.name: "float64",
    idle_steps.STEPS_COLUMN: "string",
}  # fmt: skip
# The trial table's columns the verdict's claim 2 and 3 read, in their schema dtypes. Only
# these: each row selection copies every column, and with the table's ~70 columns the
# selections took most of the ~0.3 s one simulated run spent in the claim functions.
SIMULATED_COLUMNS = (
    "scenario", "backend", "protocol", "mode", "idle_connections", "active_connections",
    "rate_rps_requested", "repetition", "order_index", "position_in_repetition", "status",
    "flagged",
    *(m.name for m in (
        metrics.THROUGHPUT_RPS, metrics.ACHIEVED_RATE_RATIO, metrics.REQUESTS, metrics.ERRORS,
        metrics.SERVER_CPU_US_PER_REQ, metrics.MACHINE_CPU_US_PER_REQ,
        metrics.SERVER_WAIT_US_PER_CALL, metrics.SERVER_WAIT_CALLS,
        metrics.SERVER_BUSY_FRACTION, metrics.SERVER_REJECTED_FD_SETSIZE,
    )),
    "connections_requested",
    *(m.name for m in (
        metrics.CONNECTIONS_SERVED, metrics.LATENCY_P99_US, metrics.SEND_LAG_P99_US,
    )),
    idle_steps.STEPS_COLUMN,
)  # fmt: skip
# Made-up magnitudes, loosely those of the Python epoll server on the reference VM
# (closed loop: ~12 us of server CPU per request; open loop at 1,000 req/s: ~60 us,
# most of it the wake-up a busy server does not pay); only ratios matter to the rules.
CPU_US_PER_REQ = {Mode.OPEN: 60.0, Mode.CLOSED: 12.0}
WAIT_US_PER_CALL = {Mode.OPEN: 8.0, Mode.CLOSED: 2.5}
# Events per wait call in closed loop: a busy server finds several connections ready.
EVENTS_PER_CALL_CLOSED = 4.0
# The load generator and softirq's share on the other CPU, for the whole-machine column.
MACHINE_CPU_FACTOR = 2.2
BUSY_FRACTION_RANGE = (0.92, 0.99)
# idle-steps windows (bench.analyse.idle_steps, experiment of 2026-12-06): c-epoll's batch
# moved 1.1-7 events per call between one process's windows (log spread ~0.5; 0.3 here
# for a mix of C and Python, whose batch hardly moves), its wait CPU per call with it at
# elasticity ~0.6; the machine's speed moved the Python server's whole CPU by ~0.1 in log.
STEP_BATCH_SIGMA = 0.3
STEP_BATCH_ELASTICITY = 0.6
STEP_SPEED_SIGMA = 0.10
STEP_REQUESTS = 10_000


@dataclass(frozen=True)
class SimulationSpec:
    """The nuisances and the truth of one family's simulated runs."""

    noise: tuple[float, float] = (0.10, 0.30)
    repetition_sigma: float = 0.10
    # Log change of every cost from a repetition's first position to its last.
    drift: float = 0.15
    outlier_share: float = 0.10
    outlier_factor: float = 1.6
    # (backend, relative growth at ``growth_at`` idle connections), linear in N.
    growth: tuple[tuple[str, float], ...] = ()
    growth_at: float = 4000.0
    # idle-steps' windows (one server process at each count in turn): the process's own
    # level is the trial's noise above; each window adds its own. An experiment on the
    # 2-vCPU VM with other work running read the within-process log ratio 4,000 / 0 idle
    # of the Python epoll server's wait CPU per call with a spread of 0.043 over 5
    # processes, ~0.03 per window (bench.measure.scenarios.idle_steps): 3-10% is a margin.
    window_noise: tuple[float, float] = (0.03, 0.10)
    # Drift across one process's windows (log change from its first to its last).
    window_drift: float = 0.05


class Simulator:
    """Draws trial tables for one family in one preset's cells; the layout is planned once."""

    def __init__(self, family: str, preset: str = "quick") -> None:
        # A fixed order seed: the layout's row order decides which draw each trial gets, so
        # a fresh seed (plan_trials' default) made the same rng seed give other tables in
        # another process. The trials' positions are drawn per table (``_positions``).
        cfg = family_config(preset_config(preset), family, MECHANISMS).replace(order_seed=0)
        self.backends = cfg.backends
        self.repetitions = cfg.repetitions
        self.measure_s = cfg.measure_s
        trials = plan_trials(cfg)
        layout = pd.DataFrame(
            {
                "scenario": [t.scenario for t in trials],
                "backend": [t.backend for t in trials],
                "protocol": cfg.protocol,
                "mode": [t.mode for t in trials],
                "idle_connections": [t.idle_connections for t in trials],
                "active_connections": [t.active_connections for t in trials],
                "rate_rps_requested": [t.rate_rps_requested for t in trials],
                "repetition": [t.repetition for t in trials],
                "order_index": range(len(trials)),
                "status": TrialStatus.OK,
                "flagged": False,
                metrics.ERRORS.name: 0,
                metrics.SERVER_REJECTED_FD_SETSIZE.name: 0,
                "connections_requested": [t.total_connections for t in trials],
                metrics.CONNECTIONS_SERVED.name: [t.total_connections for t in trials],
            }
        )
        dtypes = {**schema.trial_columns(), **EXTRA_COLUMNS}
        self._schema_template = coerce_table(layout, {c: dtypes[c] for c in SIMULATED_COLUMNS})
        self._numpy_template = _numpy_dtypes(self._schema_template)
        cell = ["scenario", "mode", "idle_connections", "active_connections"]
        self._cell = layout.groupby(cell, sort=False).ngroup().to_numpy()
        self._rep = layout["repetition"].to_numpy()
        # The block a permutation is drawn in: a scenario's repetition (the plan sweeps a
        # scenario's repetitions one after another).
        block = layout.groupby(["scenario", "repetition"], sort=False).ngroup().to_numpy()
        self._blocks = [np.flatnonzero(block == b) for b in np.unique(block)]
        self._closed = (layout["mode"] == Mode.CLOSED).to_numpy()
        self._idle = layout["idle_connections"].to_numpy(dtype=float)
        self._active = layout["active_connections"].to_numpy(dtype=float)
        self._rate = layout["rate_rps_requested"].to_numpy(dtype=float)
        self._backend = layout["backend"].to_numpy()
        self._steps = np.flatnonzero((layout["scenario"] == idle_steps.NAME).to_numpy())
        steps_settings = cfg.settings.get(idle_steps.NAME)
        self._step_counts = np.array(steps_settings.idle_counts if steps_settings else (), float)

    @property
    def n_cells(self) -> int:
        return int(self._cell.max()) + 1

    def _positions(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Each trial's position within its repetition, and that as a share of the last one."""
        pos = np.zeros(len(self._cell), dtype=int)
        share = np.zeros(len(self._cell))
        for idx in self._blocks:
            cells = np.unique(self._cell[idx])
            order = rng.permutation(cells)
            k = 0
            for c in order:  # cells in random order, backends within a cell in random order
                members = rng.permutation(idx[self._cell[idx] == c])
                pos[members] = np.arange(k, k + len(members))
                k += len(members)
            share[idx] = pos[idx] / max(len(idx) - 1, 1)
        return pos, share

    def table(
        self, spec: SimulationSpec, rng: np.random.Generator, schema_dtypes: bool = False
    ) -> pd.DataFrame:
        """One simulated run's trial table, every trial ok and unflagged.

        In numpy dtypes unless ``schema_dtypes`` (the trial table's nullable ones, as a
        run folder is read): the claim functions run ~25% faster on them, with the same
        result (a test compares the two).
        """
        n = len(self._cell)
        pos, share = self._positions(rng)
        rep_effect = rng.lognormal(0.0, spec.repetition_sigma, self.repetitions)[self._rep]
        nuisance = rep_effect * np.exp(spec.drift * share)
        outlier = np.where(rng.random(n) < spec.outlier_share, spec.outlier_factor, 1.0)
        lo, hi = spec.noise

        def noisy() -> np.ndarray:
            sigma = rng.uniform(lo, hi, self.n_cells)[self._cell]
            return rng.normal(0.0, 1.0, n) * sigma

        def factor() -> np.ndarray:
            return np.exp(noisy()) * nuisance * outlier

        grow = np.ones(n)
        for backend, g in spec.growth:
            hit = self._backend == backend
            grow[hit] = 1.0 + g * self._idle[hit] / spec.growth_at
        mode_cpu = np.where(self._closed, CPU_US_PER_REQ[Mode.CLOSED], CPU_US_PER_REQ[Mode.OPEN])
        mode_wait = np.where(
            self._closed, WAIT_US_PER_CALL[Mode.CLOSED], WAIT_US_PER_CALL[Mode.OPEN]
        )
        cpu = mode_cpu * grow * factor()
        wait = mode_wait * grow * factor()
        busy = rng.uniform(*BUSY_FRACTION_RANGE, n)
        throughput = np.where(
            self._closed, 1e6 * busy / cpu, self._rate * np.exp(rng.normal(0.0, 0.005, n))
        )
        requests = np.maximum(np.round(throughput * self.measure_s), 1)
        calls = np.round(requests / np.where(self._closed, EVENTS_PER_CALL_CLOSED, 1.0))
        out = (self._schema_template if schema_dtypes else self._numpy_template).copy()
        out["position_in_repetition"] = pos
        out[metrics.THROUGHPUT_RPS.name] = throughput
        out[metrics.ACHIEVED_RATE_RATIO.name] = np.where(
            self._closed, np.nan, throughput / self._rate
        )
        out[metrics.REQUESTS.name] = requests.astype(int)
        out[metrics.SERVER_CPU_US_PER_REQ.name] = cpu
        out[metrics.MACHINE_CPU_US_PER_REQ.name] = cpu * MACHINE_CPU_FACTOR * np.exp(noisy())
        out[metrics.SERVER_WAIT_US_PER_CALL.name] = wait
        out[metrics.SERVER_WAIT_CALLS.name] = calls.astype(int)
        out[metrics.SERVER_BUSY_FRACTION.name] = np.where(
            self._closed, busy, cpu * self._rate * 1e-6
        )
        out[metrics.LATENCY_P99_US.name] = 200.0 + cpu * (self._idle + self._active) / 100.0
        out[metrics.SEND_LAG_P99_US.name] = np.where(self._closed, np.nan, 5.0)
        out[idle_steps.STEPS_COLUMN] = None
        for i in self._steps:
            out.iloc[i, out.columns.get_loc(idle_steps.STEPS_COLUMN)] = self._windows(
                spec, rng, str(self._backend[i]), wait[i], cpu[i]
            )
        if schema_dtypes:
            for column in (
                "position_in_repetition",
                metrics.REQUESTS.name,
                metrics.SERVER_WAIT_CALLS.name,
            ):
                out[column] = out[column].astype("Int64")
        return out

    def _windows(
        self, spec: SimulationSpec, rng: np.random.Generator, backend: str, wait: float,
        cpu: float,
    ) -> str:  # fmt: skip
        """One idle-steps trial's windows (JSON): the trial's level, each count in turn.

        ``wait`` and ``cpu`` are the trial's simulated values at 0 idle (its process's
        level, repetition effect, drift and outlier included); each window adds its own
        noise, drift within the process and a 1-in-10 outlier at x1.6, and the stated
        growth when the backend has one. The growth is in the wait call alone, as an
        O(N) scan's would be: the CPU outside it does not grow. Each window also draws
        the two things the fit takes as covariates (``bench.analyse.idle_steps``), as
        the experiment there found them: a batch (events per call) that moves the wait
        call's cost with elasticity ``STEP_BATCH_ELASTICITY``, and a machine speed shared
        by the wait call and the rest of the server's work.
        """
        counts = self._step_counts
        order = rng.permutation(counts.size)
        g = dict(spec.growth).get(backend, 0.0)
        sigma = rng.uniform(*spec.window_noise)
        # The trial's CPU per request outside the wait call, at its own batch.
        other = max(cpu - wait / EVENTS_PER_CALL_CLOSED, 0.05 * cpu)
        out = []
        for position, k in enumerate(order):
            n = float(counts[k])
            share = position / max(counts.size - 1, 1)
            hit = spec.outlier_factor if rng.random() < spec.outlier_share else 1.0
            speed = np.exp(spec.window_drift * share + rng.normal(0, STEP_SPEED_SIGMA))
            batch = np.exp(rng.normal(0, STEP_BATCH_SIGMA))
            events = EVENTS_PER_CALL_CLOSED * batch
            w_wait, w_other = np.exp(rng.normal(0, sigma, 2))
            w = wait * (1.0 + g * n / spec.growth_at) * speed * hit * w_wait
            w *= batch**STEP_BATCH_ELASTICITY
            cpu_w = other * speed * w_other + w / events
            requests = STEP_REQUESTS
            out.append(
                {
                    "idle_connections": int(n),
                    "position": position,
                    metrics.SERVER_WAIT_US_PER_CALL.name: float(w),
                    metrics.SERVER_CPU_US_PER_REQ.name: float(cpu_w),
                    metrics.SERVER_BUSY_FRACTION.name: float(rng.uniform(*BUSY_FRACTION_RANGE)),
                    metrics.SERVER_EVENTS_PER_CALL.name: float(events),
                    metrics.SERVER_WAIT_CALLS.name: float(requests / events),
                    metrics.REQUESTS.name: requests,
                }
            )
        return json.dumps(out)


def _numpy_dtypes(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with nullable integers, booleans and strings as numpy float, bool and object."""
    out = table.copy()
    for column in out.columns:
        dtype = str(out[column].dtype)
        if dtype == "Int64":
            out[column] = out[column].astype("float64")
        elif dtype == "boolean":
            out[column] = out[column].astype(bool)
        elif dtype.startswith("string"):
            out[column] = out[column].astype(object)
    return out
