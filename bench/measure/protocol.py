"""The measurement protocol: one fresh server per trial, verify -> warm-up -> measure.

Per trial (TechEmpower's phases, pyperf's structured results):

1. start the server as its own subprocess pinned to ``cfg.server_cpu``;
2. **verify**: one real request/response (``bench.measure.probe.verify_server``);
3. **warm-up** then **measure** by the load generator pinned to the other CPUs;
   at the two edges of the measured window the load generator calls back into
   this process, which reads the server's own counters (control channel) and
   psutil's view of the server process there, so CPU time, wait calls and
   requests are differences over exactly the measured window;
4. stop the server (SIGTERM by PID, then SIGKILL) and write one raw JSON and
   one tidy row.

A trial whose server died, failed verification or made the load generator
fail is recorded with ``status="failed"`` and the reason; the run goes on.
Flagged trials (load generator saturated, rate short by > 5%, errors) are kept
but marked, so the verdict can leave them out and the charts grey them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import psutil

from bench.measure.config import EVENT_LOOP_BACKENDS, BenchConfig
from bench.measure.plan import Trial
from bench.measure.probe import VerifyError, fd_limit_probe, verify_server

HOST = "127.0.0.1"
# Open loop: a trial whose achieved rate is below this share of the requested one is flagged.
MIN_ACHIEVED_RATE_RATIO = 0.95
# Payload of echo requests (the http protocol has a fixed request).
PAYLOAD_BYTES = 64


def utc_now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C ended a run; ``path`` is its (partial) run folder."""

    def __init__(self, path: Any, trials_done: int) -> None:
        super().__init__(f"run interrupted after {trials_done} trials: {path}")
        self.path = path
        self.trials_done = trials_done


def _snapshot(server: Any, proc: psutil.Process | None) -> dict[str, Any]:
    """Server counters and psutil figures at one instant (an edge of the measured window).

    Never raises: the load generator calls this from its own loop, and a dead
    server must become a failed trial, not an exception inside the load generator.
    """
    snap: dict[str, Any] = {"utc": utc_now_iso(), "monotonic_s": time.monotonic()}
    try:
        snap["stats"] = server.stats()
    except Exception as exc:  # the control channel of a dead server refuses
        snap["stats_error"] = f"{type(exc).__name__}: {exc}"
    if proc is not None:
        try:
            with proc.oneshot():
                cpu = proc.cpu_times()
                snap["psutil"] = {
                    "cpu_user_s": cpu.user,
                    "cpu_system_s": cpu.system,
                    "rss_bytes": proc.memory_info().rss,
                    "num_fds": proc.num_fds(),
                }
        except psutil.Error as exc:
            snap["psutil_error"] = f"{type(exc).__name__}: {exc}"
        cpu_ns = _schedstat_cpu_ns(proc.pid)
        if cpu_ns is not None:
            snap.setdefault("psutil", {})["cpu_ns_schedstat"] = cpu_ns
    return snap


def _schedstat_cpu_ns(pid: int) -> int | None:
    """Nanoseconds the process's threads have run on a CPU (user + system).

    psutil's cpu_times come in 10 ms clock ticks, too coarse for a 1 s window
    at a few hundred ms of CPU; /proc/<pid>/task/*/schedstat counts nanoseconds.
    """
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as fh:
                total += int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total


def _delta(start: Mapping[str, Any], end: Mapping[str, Any], key: str) -> float | None:
    a, b = start.get(key), end.get(key)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return b - a
    return None


def _div(num: float | None, den: float | None, scale: float = 1.0) -> float | None:
    if num is None or not den:
        return None
    return num * scale / den


def _server_exit_reason(server: Any) -> str | None:
    """Why the server process is gone, or None when it is still running."""
    try:
        alive = server.is_alive()
    except Exception:  # a server object that cannot answer counts as gone
        alive = False
    if alive:
        return None
    code = None
    for attr in ("returncode", "exit_code"):
        code = getattr(server, attr, None)
        if code is not None:
            break
    proc = getattr(server, "popen", None) or getattr(server, "process", None)
    if code is None and proc is not None and hasattr(proc, "poll"):
        code = proc.poll()
    if isinstance(code, int) and code < 0:
        return f"server process exited during the trial (killed by signal {-code})"
    return f"server process exited during the trial (exit status {code})"


def _stderr_tail(server: Any, limit: int = 2000) -> str | None:
    try:
        return str(server.stderr_text())[-limit:]
    except Exception:  # stderr is a nicety for the raw file, never a reason to fail
        return None


def _sum_counts(counts: Any) -> int:
    if isinstance(counts, Mapping):
        return int(sum(v for v in counts.values() if isinstance(v, int | float)))
    if isinstance(counts, int | float):
        return int(counts)
    return 0


def server_window_columns(start: Mapping[str, Any], end: Mapping[str, Any]) -> dict[str, Any]:
    """Tidy columns computed from the server snapshots at the window's two edges."""
    s0, s1 = start.get("stats") or {}, end.get("stats") or {}
    p0, p1 = start.get("psutil") or {}, end.get("psutil") or {}
    requests = _delta(s0, s1, "requests")
    user_s = _delta(p0, p1, "cpu_user_s")
    system_s = _delta(p0, p1, "cpu_system_s")
    if user_s is None:  # fall back on the server's own getrusage figures
        user_s = _delta(s0, s1, "cpu_user_s")
        system_s = _delta(s0, s1, "cpu_system_s")
    cpu_s = (user_s or 0.0) + (system_s or 0.0) if user_s is not None else None
    sched_ns = _delta(p0, p1, "cpu_ns_schedstat")
    if sched_ns is not None:
        cpu_s = sched_ns / 1e9  # same quantity, nanosecond resolution
    wait_calls = _delta(s0, s1, "wait_calls")
    wait_events = _delta(s0, s1, "wait_events")
    # CPU time inside the wait call, not wall time: in a lightly loaded server
    # most of a blocking wait is sleep, which would hide the kernel's scan cost.
    # The servers read the CPU clock on a sample of wait calls (1 in 8), so the
    # per-call and per-event costs come from the sampled calls alone.
    sampled_cpu_us = _div(_delta(s0, s1, "wait_cpu_ns"), 1000.0)
    sampled_calls = _delta(s0, s1, "wait_cpu_samples")
    sampled_events = _delta(s0, s1, "wait_cpu_sample_events")
    instrumented = s1.get("wait_instrumented", True)
    rejected = s1.get("rejected_fd_setsize")
    emfile = s1.get("accept_emfile") or 0
    return {
        "server_cpu_user_s": user_s,
        "server_cpu_system_s": system_s,
        "server_cpu_us_per_req": _div(cpu_s, requests, 1e6),
        "server_wait_calls": wait_calls if instrumented else None,
        "server_wait_us_per_call": _div(sampled_cpu_us, sampled_calls) if instrumented else None,
        "server_wait_us_per_event": _div(sampled_cpu_us, sampled_events) if instrumented else None,
        "server_events_per_call": _div(wait_events, wait_calls) if instrumented else None,
        "server_rss_bytes": p1.get("rss_bytes"),
        "server_num_fds": p1.get("num_fds"),
        "server_current_connections": s1.get("current_connections"),
        "server_rejected_fd_setsize": rejected,
        # Every connection of a load trial is held open through the window, so the
        # ones the server still holds at its end are the ones it served.
        "connections_served": s1.get("current_connections"),
        "connections_rejected": (rejected or 0) + emfile if rejected is not None else None,
        "_server_requests": requests,
    }


def _base_row(trial: Trial, started_utc: str) -> dict[str, Any]:
    return {
        "scenario": trial.scenario,
        "backend": trial.backend,
        "protocol": trial.protocol,
        # fd-limit probes send one request per connection and wait: closed loop.
        "mode": "closed" if trial.mode == "probe" else trial.mode,
        "idle_connections": trial.idle_connections,
        "active_connections": trial.active_connections,
        "rate_rps_requested": trial.rate_rps_requested,
        "repetition": trial.repetition,
        "order_index": trial.order_index,
        "started_utc": started_utc,
        "connections_requested": trial.total_connections,
    }


def load_columns(trial: Trial, result: Mapping[str, Any]) -> dict[str, Any]:
    """Tidy columns from the load generator's JSON document."""
    latency = result.get("latency_us") or {}
    corrected = latency.get("corrected") or {}
    uncorrected = latency.get("uncorrected") or {}
    conns = result.get("connections") or {}
    established = None
    if "idle_established" in conns or "active_established" in conns:
        established = int(conns.get("idle_established") or 0) + int(
            conns.get("active_established") or 0
        )
    errors = result.get("errors")
    return {
        "throughput_rps": result.get("throughput_rps"),
        "achieved_rate_ratio": result.get("achieved_rate_ratio") if trial.mode == "open" else None,
        "requests": result.get("requests"),
        "errors": _sum_counts(errors),
        "latency_p50_us": corrected.get("p50"),
        "latency_p90_us": corrected.get("p90"),
        "latency_p99_us": corrected.get("p99"),
        "latency_p999_us": corrected.get("p99_9", corrected.get("p999")),
        "latency_max_us": corrected.get("max"),
        "uncorrected_latency_p50_us": uncorrected.get("p50"),
        "uncorrected_latency_p99_us": uncorrected.get("p99"),
        "connections_established": established,
        "connect_errors": _sum_counts(conns.get("connect_errors")),
        "client_observation": json.dumps(errors, sort_keys=True) if errors else None,
        "loadgen_saturated": bool(result.get("saturated", False)),
        "loadgen_cpu_us_per_req": result.get("loadgen_cpu_us_per_req"),
    }


def flag_reasons(trial: Trial, row: Mapping[str, Any], result: Mapping[str, Any]) -> list[str]:
    """Why a finished trial should not be trusted as a clean measurement."""
    reasons = []
    if row.get("loadgen_saturated"):
        reasons.append("loadgen_saturated")
    ratio = row.get("achieved_rate_ratio")
    if trial.mode == "open" and ratio is not None and ratio < MIN_ACHIEVED_RATE_RATIO:
        reasons.append(f"rate_shortfall({ratio:.2f})")
    if (row.get("errors") or 0) > 0:
        reasons.append(f"errors({row['errors']})")
    established = row.get("connections_established")
    if established is not None and established < trial.total_connections:
        reasons.append(f"connections_short({established}/{trial.total_connections})")
    if result.get("partial"):
        reasons.append("partial")
    instrumented = trial.backend in EVENT_LOOP_BACKENDS
    if trial.mode != "probe" and instrumented and row.get("server_wait_calls") is None:
        reasons.append("no_server_stats")
    return reasons


@dataclasses.dataclass
class TrialOutcome:
    """What one trial produced: its tidy row and its raw document."""

    row: dict[str, Any]
    raw: dict[str, Any]
    interrupted: bool = False


def _load_config(cfg: BenchConfig, trial: Trial, port: int) -> Any:
    from loadgen import LoadConfig

    kwargs: dict[str, Any] = {
        "host": HOST,
        "port": port,
        "protocol": trial.protocol,
        "idle_connections": trial.idle_connections,
        "active_connections": trial.active_connections,
        "mode": "open" if trial.mode == "open" else "closed",
        "rate_rps": trial.rate_rps_requested,
        "duration_s": trial.measure_s,
        "warmup_s": trial.warmup_s,
        "workers": cfg.loadgen_workers,
        "cpus": tuple(cfg.loadgen_cpus),
        "payload_bytes": PAYLOAD_BYTES,
    }
    churn_field = _loadgen_churn_field()
    if trial.http_close and churn_field:
        kwargs[churn_field] = True
    return LoadConfig(**kwargs)


_CHURN_FIELDS = ("new_connection_per_request", "connection_per_request", "reconnect_per_request")


def _loadgen_churn_field() -> str | None:
    """The LoadConfig field that makes the load generator reconnect per request, if any."""
    from loadgen import LoadConfig

    names = {f.name for f in dataclasses.fields(LoadConfig)}
    return next((n for n in _CHURN_FIELDS if n in names), None)


def _loadgen_has_churn() -> bool:
    try:
        return _loadgen_churn_field() is not None
    except ImportError:
        return False


def run_trial(
    cfg: BenchConfig,
    trial: Trial,
    write_raw: Callable[[str, Mapping[str, Any]], str],
) -> TrialOutcome:
    """Measure one trial and return its row; never raises except on Ctrl-C.

    On Ctrl-C the server is stopped (context manager) and KeyboardInterrupt
    propagates after the caller gets nothing for this unfinished trial.
    """
    from servers.launch import ServerConfig, start_server

    started_utc = utc_now_iso()
    row = _base_row(trial, started_utc)
    phases: dict[str, Any] = {"trial_start_utc": started_utc}
    raw: dict[str, Any] = {"trial": dataclasses.asdict(trial), "phases": phases}
    result: dict[str, Any] = {}
    failure: str | None = None
    server_cfg = ServerConfig(
        backend=trial.backend,
        protocol=trial.protocol,
        cpu=cfg.server_cpu,
        http_close=trial.http_close,
    )
    try:
        with start_server(server_cfg) as server:
            raw["server_ready_info"] = getattr(server, "ready_info", None)
            try:
                proc: psutil.Process | None = psutil.Process(server.pid)
            except psutil.Error:
                proc = None
            try:
                phases["verify_start_utc"] = utc_now_iso()
                verify_server(HOST, server.port, trial.protocol)
                phases["verify_end_utc"] = utc_now_iso()
                if trial.mode == "probe":
                    result = _run_probe(trial, server, proc, raw, row)
                elif trial.http_close and not _loadgen_has_churn():
                    result = _run_churn_wrk(cfg, trial, server, proc, raw, row)
                else:
                    result = _run_load(cfg, trial, server, proc, raw, row)
            except Exception as exc:
                # A crashed server is the cause; what the client then saw is the symptom.
                died = _server_exit_reason(server)
                if died is None:
                    raise
                failure = f"{died}; client: {type(exc).__name__}: {exc}"
            else:
                failure = _server_exit_reason(server)
            if failure is not None:
                raw["server_stderr_tail"] = _stderr_tail(server)
    except KeyboardInterrupt:
        raise
    except VerifyError as exc:
        failure = str(exc)
    except Exception as exc:  # any other failure of this trial is recorded, the run goes on
        failure = f"{type(exc).__name__}: {exc}"
    phases["trial_end_utc"] = utc_now_iso()
    if failure is None and result.get("partial") and _interrupted_by_user(result):
        # The load generator caught Ctrl-C itself and returned what it had.
        raw["status"] = "interrupted"
        return TrialOutcome(row=row, raw=raw, interrupted=True)
    reasons = [] if failure else flag_reasons(trial, row, result)
    if trial.mode == "probe" and not failure:
        reasons = [r for r in reasons if not r.startswith(("errors", "connections_short"))]
        if "timeout" in json.loads(row.get("client_observation") or "{}"):
            reasons.append("probe_timeouts")
    row.update(
        status="failed" if failure else "ok",
        failure_reason=failure,
        flagged=bool(reasons) or failure is not None,
        flag_reasons=";".join(reasons) if reasons else None,
    )
    raw["status"] = row["status"]
    raw["failure_reason"] = failure
    raw["flag_reasons"] = reasons
    row["raw_file"] = write_raw(f"{trial.slug}.json", raw)
    row.pop("_server_requests", None)
    return TrialOutcome(row=row, raw=raw)


def _interrupted_by_user(result: Mapping[str, Any]) -> bool:
    reason = str(result.get("partial_reason") or result.get("stop_reason") or "")
    return bool(result.get("partial")) and ("SIGINT" in reason or "interrupt" in reason.lower())


def _window_edges(
    server: Any, proc: psutil.Process | None, phases: dict[str, Any]
) -> tuple[dict[str, Any], Callable[..., None], Callable[..., None]]:
    """Callbacks that snapshot the server at the measured window's two edges."""
    edges: dict[str, Any] = {}

    def on_measure_start(*_: Any) -> None:
        edges["start"] = _snapshot(server, proc)
        phases["measure_start_utc"] = edges["start"]["utc"]

    def on_measure_end(*_: Any) -> None:
        edges["end"] = _snapshot(server, proc)
        phases["measure_end_utc"] = edges["end"]["utc"]

    return edges, on_measure_start, on_measure_end


def _run_load(
    cfg: BenchConfig,
    trial: Trial,
    server: Any,
    proc: psutil.Process | None,
    raw: dict[str, Any],
    row: dict[str, Any],
) -> dict[str, Any]:
    from loadgen import run_load

    phases = raw["phases"]
    edges, on_measure_start, on_measure_end = _window_edges(server, proc, phases)

    load_cfg = _load_config(cfg, trial, server.port)
    phases["load_start_utc"] = utc_now_iso()
    result = run_load(load_cfg, on_measure_start=on_measure_start, on_measure_end=on_measure_end)
    phases["load_end_utc"] = utc_now_iso()
    raw["server_edges"] = edges
    raw["loadgen"] = result
    row.update(load_columns(trial, result))
    if "start" in edges and "end" in edges:
        row.update(server_window_columns(edges["start"], edges["end"]))
    else:
        raise RuntimeError("the load generator never reached the measured window")
    if trial.http_close:
        # Churn: each request is its own connection, so "served" is what the
        # server accepted in the window, not what it still holds at its end.
        row["connections_served"] = _delta(
            edges["start"].get("stats") or {}, edges["end"].get("stats") or {}, "accepted"
        )
    return result


def _run_churn_wrk(
    cfg: BenchConfig,
    trial: Trial,
    server: Any,
    proc: psutil.Process | None,
    raw: dict[str, Any],
    row: dict[str, Any],
) -> dict[str, Any]:
    """churn through wrk (which reconnects per request); counters at the window's edges."""
    from bench.measure.churn_wrk_REMOVED import run_wrk_churn

    phases = raw["phases"]
    edges, on_measure_start, on_measure_end = _window_edges(server, proc, phases)

    phases["load_start_utc"] = utc_now_iso()
    result = run_wrk_churn(
        HOST,
        server.port,
        trial.active_connections,
        trial.warmup_s,
        trial.measure_s,
        tuple(cfg.loadgen_cpus),
        on_measure_start,
        on_measure_end,
    )
    phases["load_end_utc"] = utc_now_iso()
    raw["server_edges"] = edges
    raw["loadgen"] = result
    window = server_window_columns(edges["start"], edges["end"])
    requests = window.pop("_server_requests")
    window_s = edges["end"]["monotonic_s"] - edges["start"]["monotonic_s"]
    latency = result.get("latency_us") or {}
    errors = result.get("errors") or {}
    client_cpu = result.get("client_cpu_s_window")
    row.update(window)
    row.update(
        {
            "throughput_rps": requests / window_s if requests is not None and window_s else None,
            "requests": requests,
            "errors": _sum_counts(errors),
            "latency_p50_us": latency.get("p50"),
            "latency_p90_us": latency.get("p90"),
            "latency_p99_us": latency.get("p99"),
            "latency_p999_us": latency.get("p99_9"),
            "latency_max_us": latency.get("max"),
            "connections_established": None,
            "connect_errors": int(errors.get("connect", 0)),
            "client_observation": json.dumps(errors, sort_keys=True)
            if any(errors.values())
            else None,
            "loadgen_saturated": bool(result.get("saturated")),
            "loadgen_cpu_us_per_req": _div(client_cpu, requests, 1e6),
            # Each request is its own connection: what the server accepted in the window.
            "connections_served": _delta(
                edges["start"].get("stats") or {}, edges["end"].get("stats") or {}, "accepted"
            ),
        }
    )
    return result


def _run_probe(
    trial: Trial,
    server: Any,
    proc: psutil.Process | None,
    raw: dict[str, Any],
    row: dict[str, Any],
) -> dict[str, Any]:
    """fd-limit: offer N plain connections, one request each; record what each client saw."""
    edges: dict[str, Any] = {"start": _snapshot(server, proc)}
    base = (edges["start"].get("stats") or {}).get("accepted", 0)

    def wait_accepted(n: int) -> None:
        # The server decides each connection's fate at accept; wait for all of them
        # (or for the count to stop moving), then read its state with every socket open.
        deadline = time.monotonic() + 5.0
        last, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            stats = _snapshot(server, None).get("stats") or {}
            done = stats.get("accepted", 0) - base
            if done >= n:
                break
            if done != last:
                last, last_change = done, time.monotonic()
            elif time.monotonic() - last_change > 0.5:
                break
            time.sleep(0.02)
        edges["end"] = _snapshot(server, proc)

    phases = raw["phases"]
    phases["measure_start_utc"] = utc_now_iso()
    probe = fd_limit_probe(HOST, server.port, trial.probe_connections, wait_accepted=wait_accepted)
    phases["measure_end_utc"] = utc_now_iso()
    result = {
        "requested": probe.requested,
        "established": probe.established,
        "connect_errors": probe.connect_errors,
        "observations": probe.observations,
        "served": probe.served,
    }
    raw["server_edges"] = edges
    raw["probe"] = result
    end_stats = (edges.get("end") or {}).get("stats") or {}
    start_stats = edges["start"].get("stats") or {}
    window = server_window_columns(edges["start"], edges.get("end") or {})
    rejected = _delta(start_stats, end_stats, "rejected_fd_setsize")
    row.update(
        {
            "requests": probe.served,
            "errors": probe.requested - probe.served,
            "server_rss_bytes": window["server_rss_bytes"],
            "server_num_fds": window["server_num_fds"],
            "server_current_connections": end_stats.get("current_connections"),
            "server_rejected_fd_setsize": int(rejected) if rejected is not None else None,
            "connections_established": probe.established,
            "connections_served": probe.served,
            "connections_rejected": int(rejected) if rejected is not None else None,
            "connect_errors": sum(probe.connect_errors.values()),
            "client_observation": json.dumps(probe.observations, sort_keys=True),
        }
    )
    return result


def end_children(timeout_s: float = 3.0) -> list[int]:
    """Terminate every child process of this process (by PID); returns those that needed it.

    The server and load generator already stop their own processes on the way
    out; this is the last line of defence after Ctrl-C, so nothing outlives bench.
    """
    try:
        children = psutil.Process(os.getpid()).children(recursive=True)
    except psutil.Error:
        return []
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=timeout_s)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(alive, timeout=timeout_s)
    return [c.pid for c in children]


@dataclasses.dataclass
class RunOutcome:
    """How a run ended: where it is, whether it finished, how long it took."""

    path: Any
    status: str  # "complete" | "partial"
    trials_done: int
    trials_planned: int
    duration_s: float
    failed: int
    flagged: int


def run_benchmark(
    cfg: BenchConfig,
    trials: list[Trial],
    progress: Any,
    warnings: list[str],
) -> RunOutcome:
    """Measure every planned trial (then the micro benchmarks) into a new run folder.

    Ctrl-C (KeyboardInterrupt) stops after the current trial is abandoned: the
    finished trials stay in the tables, run.json says ``partial``, every child
    process is ended, and the KeyboardInterrupt is re-raised for the caller
    to exit non-zero. The caller has already checked limits and the budget.
    """
    from bench.measure.machine import git_state, machine_metadata
    from bench.store.results import create_run

    t0 = time.monotonic()
    machine = machine_metadata()
    writer = create_run(
        cfg.out_dir,
        cfg.preset,
        cfg.to_dict(),
        machine,
        git_state(),
        cells_total=len(trials),
    )
    for text in warnings:
        writer.add_warning(text)
    # bench itself is not pinned: its children (servers) inherit its affinity
    # and must be able to pin themselves to the server CPU. The load generator
    # pins its own workers; bench's own work in a trial is two counter reads.
    done = failed = flagged = 0
    status = "partial"
    try:
        with progress:
            for trial in trials:
                progress.start_trial(trial)
                outcome = run_trial(cfg, trial, writer.write_raw_json)
                if outcome.interrupted:
                    raise KeyboardInterrupt
                writer.append_trial(outcome.row)
                done += 1
                failed += outcome.row["status"] == "failed"
                flagged += bool(outcome.row.get("flagged")) and outcome.row["status"] == "ok"
                writer.update_meta(cells_done=done)
                progress.end_trial(trial, outcome.row["status"], _summary(outcome.row))
            if "micro" in cfg.scenarios:
                progress.note(f"micro benchmarks ({cfg.micro_set} set)...")
                try:
                    _run_micro(cfg, writer)
                except Exception as exc:  # the load trials stay valid without them
                    writer.add_warning(f"micro benchmarks failed: {exc}")
                    progress.note(f"warning: micro benchmarks failed: {exc}")
        status = "complete"
    except KeyboardInterrupt as exc:
        writer.add_warning(
            f"interrupted by the user after {done} of {len(trials)} trials: the run is partial"
        )
        raise RunInterrupted(writer.path, done) from exc
    finally:
        end_children()
        writer.mark(status)
    return RunOutcome(
        path=writer.path,
        status=status,
        trials_done=done,
        trials_planned=len(trials),
        duration_s=time.monotonic() - t0,
        failed=failed,
        flagged=flagged,
    )


def _run_micro(cfg: BenchConfig, writer: Any) -> None:
    """Run the micro benchmarks (bench.measure.micro) on the server's CPU and store their table.

    The pytest subprocess inherits this process's CPU affinity, so bench moves
    itself onto the server's CPU for the duration: the wait-call cost is then
    measured on the same core as the in-server figures.
    """
    from bench.store import schema
    from bench.measure.micro import run_micro

    previous = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {cfg.server_cpu})
    except OSError:
        previous = set()
    try:
        table = run_micro(
            (writer.path / schema.MICRO_RAW_JSON).resolve(),
            quick=cfg.micro_set in ("quick", "tiny"),
            max_time_s=MICRO_MAX_TIME_S.get(cfg.micro_set),
        )
    finally:
        if previous:
            os.sched_setaffinity(0, previous)
    writer.write_micro(table)


# Seconds pytest-benchmark spends per case, by set (None: bench.measure.micro's default).
MICRO_MAX_TIME_S: dict[str, float | None] = {"tiny": 0.005, "quick": None, "standard": None}


def _summary(row: Mapping[str, Any]) -> str:
    if row["status"] != "ok":
        return str(row.get("failure_reason"))
    parts = []
    if row.get("throughput_rps") is not None:
        parts.append(f"{row['throughput_rps']:.0f} req/s")
    if row.get("latency_p99_us") is not None:
        parts.append(f"p99 {row['latency_p99_us']:.0f} us")
    if row.get("server_cpu_us_per_req") is not None:
        parts.append(f"cpu {row['server_cpu_us_per_req']:.1f} us/req")
    if row.get("client_observation") and row.get("scenario") == "fd-limit":
        parts.append(f"served {row.get('connections_served')} saw {row['client_observation']}")
    if row.get("flag_reasons"):
        parts.append(f"flagged: {row['flag_reasons']}")
    return ", ".join(parts)
