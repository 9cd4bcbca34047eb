"""The trial protocol: one fresh server per trial, verify -> load (warm-up, measure) -> row.

Per trial (TechEmpower's phases, pyperf's structured results):

1. **start** the server as its own process, pinned to the server CPU;
2. **verify**: one real request/response (``bench.measure.probe.verify_server``);
3. **load**: the scenario's driver warms up and measures; at the two edges of
   the measured window it reads the server's own counters and the kernel's CPU
   accounting, so every server figure covers exactly the measured window;
4. **stop** the server (SIGTERM by PID, then SIGKILL) and **record** one raw
   JSON document and one tidy row.

A trial whose server died, failed verification or made the load generator
fail is recorded with status ``TrialStatus.FAILED`` and the reason; the run goes on.
Flagged trials are kept but marked, so the verdict can leave them out and the
charts grey them. This module knows no scenario by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from bench.measure import scenarios
from bench.measure.columns import base_row
from bench.measure.config import BenchConfig
from bench.measure.drivers import DriverOutput, TrialContext
from bench.measure.placement import Placement, ServerHandle
from bench.measure.probe import VerifyError, verify_server
from bench.measure.trial import Trial
from bench.tables import TrialStatus, utc_now_iso
from servers.config import ServerConfig

WriteRaw = Callable[[str, Mapping[str, Any]], str]


@dataclasses.dataclass
class TrialOutcome:
    """What one trial produced: its tidy row and its raw document."""

    row: dict[str, Any]
    raw: dict[str, Any]
    interrupted: bool = False


def server_config(cfg: BenchConfig, trial: Trial) -> ServerConfig:
    """The server's config for one trial (built directly: servers owns the type)."""
    return ServerConfig(
        backend=trial.backend,
        protocol=trial.protocol,
        cpu=cfg.server_cpu,
        http_close=trial.http_close,
    )


def verify(ctx: TrialContext) -> None:
    ctx.phases["verify_start_utc"] = utc_now_iso()
    verify_server(ctx.server.host, ctx.server.port, ctx.trial.protocol)
    ctx.phases["verify_end_utc"] = utc_now_iso()


def load(ctx: TrialContext) -> DriverOutput:
    driver = scenarios.get(ctx.trial.scenario).driver
    if driver is None:
        raise RuntimeError(f"scenario {ctx.trial.scenario!r} has no trial driver")
    return driver(ctx)


def measure_on(server: ServerHandle, ctx: TrialContext) -> tuple[DriverOutput | None, str | None]:
    """Verify then load; a crash of the server is the failure, not what the client saw."""
    try:
        verify(ctx)
        output = load(ctx)
    except Exception as exc:
        died = server.exit_reason()
        if died is None:
            raise
        ctx.raw["server_stderr_tail"] = server.stderr_tail()
        return None, f"{died}; client: {type(exc).__name__}: {exc}"
    died = server.exit_reason()
    if died is not None:
        ctx.raw["server_stderr_tail"] = server.stderr_tail()
    return output, died


def record(
    trial: Trial,
    row: dict[str, Any],
    raw: dict[str, Any],
    output: DriverOutput | None,
    failure: str | None,
    write_raw: WriteRaw,
) -> TrialOutcome:
    """The trial's row and raw document, with its status and flags."""
    if output is not None and failure is None:
        row.update(output.columns)
    reasons = [] if failure or output is None else output.flag_reasons
    row.update(
        status=TrialStatus.FAILED if failure else TrialStatus.OK,
        failure_reason=failure,
        flagged=bool(reasons) or failure is not None,
        flag_reasons=";".join(reasons) if reasons else None,
    )
    raw.update(status=row["status"], failure_reason=failure, flag_reasons=reasons)
    # The row too, so the run's tables can be rebuilt from raw/ alone (its raw_file is
    # where it is read from): bench.store.schema.RAW_ROW_KEY.
    raw["row"] = dict(row)
    row["raw_file"] = write_raw(f"{trial.slug}.json", raw)
    return TrialOutcome(row=row, raw=raw)


def run_trial(
    cfg: BenchConfig, trial: Trial, placement: Placement, write_raw: WriteRaw
) -> TrialOutcome:
    """Measure one trial and return its row; never raises except on Ctrl-C.

    On Ctrl-C the server is stopped (context manager) and KeyboardInterrupt
    propagates; the caller gets nothing for this unfinished trial.
    """
    started_utc = utc_now_iso()
    row = base_row(trial, started_utc)
    raw: dict[str, Any] = {"trial": dataclasses.asdict(trial), "phases": {}}
    raw["phases"]["trial_start_utc"] = started_utc
    output: DriverOutput | None = None
    failure: str | None = None
    try:
        with placement.server(server_config(cfg, trial)) as server:
            raw["server_ready_info"] = server.ready_info
            ctx = TrialContext(cfg, trial, placement, server, raw)
            output, failure = measure_on(server, ctx)
    except KeyboardInterrupt:
        raise
    except VerifyError as exc:
        failure = str(exc)
    except Exception as exc:  # any other failure of this trial is recorded, the run goes on
        failure = f"{type(exc).__name__}: {exc}"
    raw["phases"]["trial_end_utc"] = utc_now_iso()
    if failure is None and output is not None and output.interrupted:
        # The load generator caught Ctrl-C itself and returned what it had.
        raw["status"] = "interrupted"
        return TrialOutcome(row=row, raw=raw, interrupted=True)
    return record(trial, row, raw, output, failure, write_raw)
