"""Micro benchmarks of the readiness calls, run through pytest-benchmark, and their tidy table.

``run_micro`` runs the benchmarks in ``processes`` fresh pytest subprocesses, one
after another (in parallel they would share the CPUs), each with
``--benchmark-json`` and 1/processes of the time budget; it merges their JSON
into one document (each benchmark's ``extra_info["process"]`` says which) and
converts it (``bench.tables.micro.micro_table_from_json``) into the ``micro.csv``
columns of ``MICRO_COLUMNS`` (microseconds, per call). Why processes: the ~1,100 blocks one
process times are serially correlated (a slow phase of the machine lasts
seconds), so they are not independent samples; a fresh process is what is
independently repeated, and the analysis treats it as the unit of replication.
Every process times the wait calls; the register/modify/unregister and wake
cases run in process 0 only (repeating their per-case set-up of up to 8,000
socketpairs in every process would add seconds to the standard preset). One row
per benchmark, ``operation`` and ``process``:

- ``wait`` (``wait_cost.py``): one wait call, timeout 0, ``ready`` "one" or "all"; the
  counts of a mechanism timed in interleaved blocks, ``rounds`` is the number of blocks
  its process timed;
- ``register``, ``modify``, ``unregister`` and ``modify+wait`` (``ctl_cost.py``),
  ``ready`` "none": one call of the event loop's adapter against N registered (timed in
  batches, divided by the batch), and one modify followed by one wait call;
- ``wake`` and ``blocking-wait-cpu`` (``wake_cost.py``), ``ready`` "woken": a blocking
  wait on N idle descriptors woken by another thread's write (wall time from the write to
  the return; the waiter's CPU time for the call).

A row without an ``operation`` (a run from before these existed) is a ``wait``; rows of
the other operations never have ``ready`` "one" or "all", so a reader that filters on
``ready`` alone still sees only the wait calls. A row without a ``process`` comes from a
run before the per-process layout: one process, its value the median of all its blocks.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bench.tables.micro import PROCESS, empty_micro_table, micro_table_from_json
from lifeline import preexec_die_with_parent

BENCH_MODULE = Path(__file__).with_name("wait_cost.py")
BENCH_MODULES = (
    BENCH_MODULE,
    Path(__file__).with_name("ctl_cost.py"),
    Path(__file__).with_name("wake_cost.py"),
)
# Micro sets (BENCH_MICRO_SET): "quick" times the wait calls only, "full" (standard and
# full presets) adds the register/modify/unregister and wake cases, "tiny" (the test
# suite) has the quick wait cases and one count of every other case.
SETS = ("quick", "full", "tiny")


# The process index a benchmark subprocess is told (its blocks' order seed depends on it).
PROCESS_ENV = "BENCH_MICRO_PROCESS"
PYTEST_NO_TESTS_COLLECTED = 5
KILL_WAIT_S = 10.0


class MicroBenchmarkError(RuntimeError):
    """A micro benchmark subprocess failed, timed out or wrote no JSON.

    ``table`` holds the rows of the processes that finished before it (possibly none).
    """

    def __init__(self, message: str, table: pd.DataFrame | None = None) -> None:
        super().__init__(message)
        self.table = table if table is not None else empty_micro_table()


def merge_process_documents(docs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One pytest-benchmark document from the processes' own, in process order.

    Each benchmark's ``extra_info["process"]`` is its process's index;
    ``processes`` lists when each ran.
    """
    merged: dict[str, Any] = {k: v for k, v in (docs[0] if docs else {}).items()}
    merged["processes"] = [
        {PROCESS: p, "datetime": d.get("datetime"), "benchmarks": len(d.get("benchmarks", []))}
        for p, d in enumerate(docs)
    ]
    merged["benchmarks"] = [
        {**b, "extra_info": {**(b.get("extra_info") or {}), PROCESS: p}}
        for p, d in enumerate(docs)
        for b in d.get("benchmarks", [])
    ]
    return merged


def run_to_end(
    cmd: Sequence[str], env: dict[str, str], cwd: Path, timeout_s: float
) -> tuple[int, str]:
    """Run one subprocess, wait for it; kill it by its PID on timeout or interruption.

    Returns (exit code, stdout and stderr); raises ``subprocess.TimeoutExpired``
    (the process already killed) or re-raises KeyboardInterrupt after the kill.
    """
    proc = subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=cwd,
        # pytest is not ours to arm from inside; bench's main thread starts it.
        preexec_fn=preexec_die_with_parent(),
    )
    try:
        output, _ = proc.communicate(timeout=timeout_s)
    except BaseException:  # the timeout, KeyboardInterrupt, anything: never leave it running
        proc.kill()  # SIGKILL to its PID (a no-op once it has been reaped)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=KILL_WAIT_S)
        raise
    return proc.returncode, output


def _pytest_command(
    modules: Sequence[Path], out: Path, max_time_s: float, keyword: str | None
) -> list[str]:
    cmd = [
        sys.executable, "-m", "pytest", *(str(m) for m in modules),
        "-q", "-p", "no:cacheprovider", "-p", "pytest_benchmark.plugin", "-o", "addopts=",
        # The benchmark modules are library modules, not tests: collected by their own name.
        "-o", "python_files=*_cost.py",
        "-W", "ignore::pytest.PytestConfigWarning",  # the project's `timeout`, plugin unloaded
        "--benchmark-enable", "--benchmark-only",
        f"--benchmark-json={out}", f"--benchmark-max-time={max_time_s}",
        "--benchmark-min-rounds=5", "--benchmark-sort=name",
    ]  # fmt: skip
    return cmd + (["-k", keyword] if keyword else [])


def _one_process(
    process: int, processes: int, out: Path, max_time_s: float, set_name: str,
    keyword: str | None, timeout_s: float,
) -> dict[str, Any] | None:  # fmt: skip
    """Run process ``process``; its pytest-benchmark document, or None if it selected nothing."""
    part = out.with_name(f"{out.stem}.process{process}.json")
    part.unlink(missing_ok=True)
    modules = BENCH_MODULES if process == 0 else (BENCH_MODULE,)
    cmd = _pytest_command(modules, part, max_time_s, keyword)
    env = {
        # Not a pytest-xdist worker's variables: pytest-benchmark reads PYTEST_XDIST_WORKER
        # as "xdist is on" and then refuses --benchmark-only (when a test suite run with
        # -n starts a run).
        **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")},
        "BENCH_MICRO_SET": set_name,
        PROCESS_ENV: str(process),
        # Only pytest-benchmark is needed; other installed plugins cost ~0.5 s per process.
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    where = f"process {process} of 0..{processes - 1}"
    rerun = f"BENCH_MICRO_SET={set_name} {PROCESS_ENV}={process} PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 "
    try:
        code, output = run_to_end(cmd, env, BENCH_MODULE.parent, timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise MicroBenchmarkError(
            f"micro benchmarks: {where} did not finish within {timeout_s:.0f} s and was killed; "
            "the processes before it are kept. Run fewer with quick=True or a keyword."
        ) from exc
    if code == PYTEST_NO_TESTS_COLLECTED and process > 0:
        return None  # the keyword selects no wait-call case, which only process 0 lacks
    if code != 0 or not part.is_file():
        raise MicroBenchmarkError(
            f"micro benchmarks failed in {where} (pytest exit {code}); the processes before it "
            f"are kept. Run `{rerun}{' '.join(cmd)}` in {BENCH_MODULE.parent} to see why. "
            f"Output tail:\n{output[-1500:]}"
        )
    doc = json.loads(part.read_text())
    part.unlink()
    return doc


def run_micro(
    out_json_path: str | Path,
    quick: bool,
    *,
    set_name: str | None = None,
    max_time_s: float | None = None,
    keyword: str | None = None,
    timeout_s: float = 600.0,
    processes: int = 1,
) -> pd.DataFrame:
    """Run the micro benchmarks in ``processes`` pytest subprocesses in turn; the tidy table.

    ``quick`` picks the small set of descriptor counts and a short time per
    count (0.2 s; full: 1 s) shared out between the processes; ``set_name`` (one
    of ``SETS``) overrides the set it picks. ``keyword`` is passed to ``pytest
    -k`` to run a subset; ``timeout_s`` bounds each process. Every subprocess is
    waited for or killed, so none outlives this call. ``out_json_path`` gets the
    merged document of the processes that finished, also when one fails
    (``MicroBenchmarkError``, whose ``table`` holds their rows).
    """
    if processes < 1:
        raise ValueError(f"micro benchmarks need at least 1 process, not {processes}")
    if set_name is not None and set_name not in SETS:
        raise ValueError(f"micro set {set_name!r} is unknown; use one of {SETS}")
    chosen = set_name or ("quick" if quick else "full")
    out = Path(out_json_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    per_process = (max_time_s if max_time_s is not None else (0.2 if quick else 1.0)) / processes
    docs: list[dict[str, Any]] = []

    def keep() -> pd.DataFrame:
        merged = merge_process_documents(docs)
        out.write_text(json.dumps(merged, indent=1))
        return micro_table_from_json(merged)

    try:
        for p in range(processes):
            doc = _one_process(p, processes, out, per_process, chosen, keyword, timeout_s)
            if doc is None:
                break
            docs.append(doc)
    except MicroBenchmarkError as exc:
        raise MicroBenchmarkError(str(exc), keep() if docs else None) from exc.__cause__
    except KeyboardInterrupt:
        if docs:
            keep()
        raise
    return keep()
