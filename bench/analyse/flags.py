"""What the server, the client or the machine did in a trial's window, read from its columns.

Four rules, written in ``bench.analyse.rules.RULES``, read columns of the trial
table: ``steal_fraction`` (CPU time the machine lost to steal; a fault above its
bound, rule "faults"), ``foreign_cpu_share_server`` and ``foreign_cpu_share_load``
(CPU time other processes took on the trial's CPUs; a fault above its bound, rule
"disturbed"), ``server_busy_fraction`` (server CPU time / window wall
time; client-bound, a sensitivity analysis only, rules "client_bound" and
"sensitivity") and ``send_lag_p99_us`` (the load generator's own lateness at
p99, open loop; latency charts only, rule "send_lag"). Applying them here from
the columns, with the thresholds of ``bench.analyse.rules``, keeps the verdict
the same whichever runner wrote the run. A run made before those columns
existed has them empty; then nothing is detected and ``data_quality`` says so
instead of guessing.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench import metrics
from bench.analyse.rules import (
    BUSY_COLUMN,
    CLIENT_BOUND_BUSY_FRACTION,
    DISTURBED_COLUMNS,
    DISTURBED_SHARE_MAX,
    MACHINE_CPU_COLUMN,
    SEND_LAG_COLUMN,
    SEND_LAG_P99_FRACTION,
    STEAL_COLUMN,
    STEAL_FRACTION_MAX,
)
from bench.tables import Mode, TrialStatus

CLIENT_BOUND_REASON = (
    f"client-bound: server busy under {CLIENT_BOUND_BUSY_FRACTION:.0%} of the window (closed loop)"
)
STEAL_REASON = f"steal over {STEAL_FRACTION_MAX:.0%} of the machine's CPU time in the window"


def _column(trials: pd.DataFrame, name: str) -> pd.Series:
    if name not in trials.columns:
        return pd.Series(float("nan"), index=trials.index)
    return pd.to_numeric(trials[name], errors="coerce").astype(float)


def recorded(trials: pd.DataFrame, name: str) -> bool:
    """Whether the run recorded ``name`` for at least one trial."""
    return bool(name in trials.columns and _column(trials, name).notna().any())


def client_bound(trials: pd.DataFrame) -> pd.Series:
    """Closed-loop trials whose server was busy less than the threshold (unknown: False)."""
    if trials.empty:
        return pd.Series(False, index=trials.index, dtype=bool)
    busy = _column(trials, BUSY_COLUMN)
    closed = trials["mode"].astype("string").fillna("") == Mode.CLOSED
    return (closed & (busy < CLIENT_BOUND_BUSY_FRACTION)).fillna(False).astype(bool)


def steal_fault(trials: pd.DataFrame) -> pd.Series:
    """Trials whose machine lost more than the bound to steal (unknown: False)."""
    if trials.empty:
        return pd.Series(False, index=trials.index, dtype=bool)
    steal = _column(trials, STEAL_COLUMN)
    return (steal > STEAL_FRACTION_MAX).fillna(False).astype(bool)


def disturbed(trials: pd.DataFrame) -> pd.Series:
    """Trials whose server or load CPUs gave more than the bound to other processes
    (``RULES["disturbed"]``; unknown: False)."""
    if trials.empty:
        return pd.Series(False, index=trials.index, dtype=bool)
    over = pd.Series(False, index=trials.index, dtype=bool)
    for name in DISTURBED_COLUMNS:
        over |= (_column(trials, name) > DISTURBED_SHARE_MAX).fillna(False).astype(bool)
    return over


def fault_mask(trials: pd.DataFrame) -> pd.Series:
    """Trials that ran but are left out for a fault (``RULES["faults"]``): flagged, steal
    or disturbed."""
    if trials.empty:
        return pd.Series(False, index=trials.index, dtype=bool)
    flagged = trials["flagged"].astype("boolean").fillna(False).astype(bool)
    return flagged | steal_fault(trials) | disturbed(trials)


def left_out_count(trials: pd.DataFrame) -> int:
    """Trials that ran (status ok) and the verdict leaves out, whatever the fault."""
    if trials.empty:
        return 0
    ok = trials["status"].fillna(TrialStatus.FAILED) == TrialStatus.OK
    return int((ok & fault_mask(trials)).sum())


def leave_out_client_bound(trials: pd.DataFrame) -> pd.DataFrame:
    """A copy where client-bound trials are flagged too: the sensitivity analysis's input."""
    mask = client_bound(trials) & ~fault_mask(trials)
    if not mask.any():
        return trials
    out = trials.copy()
    out.loc[mask, "flagged"] = True
    reasons = out.loc[mask, "flag_reasons"].astype("string").fillna("")
    out.loc[mask, "flag_reasons"] = (reasons + ";" + CLIENT_BOUND_REASON).str.lstrip(";")
    return out


def send_lag_material(trials: pd.DataFrame) -> pd.Series:
    """Open-loop trials whose send lag at p99 is a material part of the measured p99."""
    if trials.empty:
        return pd.Series(False, index=trials.index, dtype=bool)
    lag = _column(trials, SEND_LAG_COLUMN)
    p99 = _column(trials, metrics.LATENCY_P99_US.name)
    opened = trials["mode"].astype("string").fillna("") == Mode.OPEN
    return (opened & (lag > SEND_LAG_P99_FRACTION * p99)).fillna(False).astype(bool)


def _where(rows: pd.DataFrame) -> list[str]:
    cols = ("scenario", "backend", "mode", "idle_connections", "active_connections", "repetition")
    out = []
    for _, r in rows.iterrows():
        bits = [str(r.get(c)) for c in cols if c in rows.columns and pd.notna(r.get(c))]
        out.append(" ".join(bits))
    return out


def data_quality(trials: pd.DataFrame) -> dict[str, Any]:
    """What the column rules found in this run, or that the run could not tell."""
    ok = (
        trials["status"].fillna(TrialStatus.FAILED) == TrialStatus.OK
        if not trials.empty
        else trials.index == 0
    )
    out: dict[str, Any] = {}
    for key, column, mask_fn, what in (
        ("steal", STEAL_COLUMN, steal_fault, "trials left out for steal (a fault)"),
        (
            "disturbed",
            DISTURBED_COLUMNS[0],
            disturbed,
            "trials left out as disturbed by other processes on their CPUs (a fault)",
        ),
        (
            "client_bound",
            BUSY_COLUMN,
            client_bound,
            "closed-loop trials client-bound (kept in the verdict; left out only in the "
            "sensitivity analysis)",
        ),
        (
            "send_lag",
            SEND_LAG_COLUMN,
            send_lag_material,
            "open-loop trials whose latency is left out for send lag",
        ),
    ):
        if trials.empty or not recorded(trials, column):
            out[key] = {
                "recorded": False,
                "note": f"this run did not record {column}: {what} could not be detected",
            }
            continue
        mask = mask_fn(trials) & ok
        out[key] = {
            "recorded": True,
            "trials": int(mask.sum()),
            "note": f"{int(mask.sum())} {what}",
            "which": _where(trials[mask])[:20],
        }
    machine = not trials.empty and recorded(trials, MACHINE_CPU_COLUMN)
    out["machine_cpu"] = {
        "recorded": bool(machine),
        "note": (
            f"{MACHINE_CPU_COLUMN} recorded: shown beside claim 2's ratios"
            if machine
            else f"this run did not record {MACHINE_CPU_COLUMN}: the whole machine's CPU per "
            "request is not shown"
        ),
    }
    return out
