"""Many simulated runs of one family judged by claims 2 and 3, on every CPU the process may use.

The false-call and power figures of the verdict's rules (``tests/test_false_call_rates.py``)
come from thousands of simulated runs (``bench.analyse.simulate``), each judged by the
claim functions in tens of milliseconds. The runs are independent, so they are split
into a fixed number of chunks, each with its own seed spawned from the caller's; the
chunks run in worker processes and come back in chunk order. The result therefore
depends on the seed and the run count only, never on how many CPUs did the work.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from bench.analyse.calibration import Check, claim2_checks, claim3_checks
from bench.analyse.claim2 import claim2_family
from bench.analyse.claim3 import claim3_family
from bench.analyse.families import roles_of
from bench.analyse.simulate import SimulationSpec, Simulator

CLAIM2_JUDGE, CLAIM3_JUDGE = "claim2", "claim3"
JUDGES = (CLAIM2_JUDGE, CLAIM3_JUDGE)
# Fixed, so the draws do not depend on the machine's CPU count; 8 keeps up to 8 CPUs busy.
CHUNKS = 8


def _judge_chunk(
    family: str, spec: SimulationSpec, seed: np.random.SeedSequence, runs: int,
    judges: tuple[str, ...],
) -> dict[str, list[list[Check]]]:  # fmt: skip
    # One BLAS thread per worker: the models are small, and OpenBLAS's own threads (one
    # per CPU in each forked worker) made two workers no faster than one. 200 A/A runs
    # on this 2-CPU VM (2026-12-06): one worker 10.9 s, two 9.9 s; with one BLAS thread
    # each, one worker 9.9 s, two 4.9 s.
    with threadpool_limits(limits=1, user_api="blas"):
        return _judge_runs(family, spec, seed, runs, judges)


def _judge_runs(
    family: str, spec: SimulationSpec, seed: np.random.SeedSequence, runs: int,
    judges: tuple[str, ...],
) -> dict[str, list[list[Check]]]:  # fmt: skip
    simulator, roles = Simulator(family), roles_of(family)
    subject = str(roles.subject)
    rng = np.random.default_rng(seed)
    out: dict[str, list[list[Check]]] = {judge: [] for judge in judges}
    for _ in range(runs):
        table = simulator.table(spec, rng)
        if CLAIM2_JUDGE in judges:
            out[CLAIM2_JUDGE].append(claim2_checks(claim2_family(table, roles), subject))
        if CLAIM3_JUDGE in judges:
            out[CLAIM3_JUDGE].append(claim3_checks(claim3_family(table, roles), subject))
    return out


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0))


def simulated_checks(
    family: str, spec: SimulationSpec, seed: int, runs: int,
    judges: Sequence[str] = JUDGES, workers: int | None = None,
) -> dict[str, list[list[Check]]]:  # fmt: skip
    """Each judge's checks of ``runs`` simulated runs (in chunk order), by judge name.

    ``workers`` defaults to the CPUs this process may run on; 1 runs in this process.
    """
    unknown = set(judges) - set(JUDGES)
    if unknown:
        raise ValueError(f"unknown judges {sorted(unknown)}: choose from {JUDGES}")
    chosen = tuple(judges)
    sizes = [runs // CHUNKS + (1 if i < runs % CHUNKS else 0) for i in range(CHUNKS)]
    seeds = np.random.SeedSequence(seed).spawn(CHUNKS)
    jobs = [(family, spec, s, n, chosen) for s, n in zip(seeds, sizes, strict=True) if n]
    workers = min(usable_cpus() if workers is None else workers, len(jobs))
    if workers <= 1:
        parts = [_judge_chunk(*job) for job in jobs]
    else:
        # fork: no start-up imports, and no resource-tracker process outliving the pool
        # (the test suite fails any test that leaves a child behind). The workers only
        # compute; the pool is shut down, and its processes joined, before returning.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            parts = list(pool.map(_judge_chunk, *zip(*jobs, strict=True)))
    return {judge: [checks for part in parts for checks in part[judge]] for judge in chosen}
