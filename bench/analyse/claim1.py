"""Claim 1: can select watch at most FD_SETSIZE (1024) descriptors per process?

Judged from the fd-limit scenario: the most connections the select server
served at once, against the connections requested and rejected. SUPPORTED when
select served at most FD_SETSIZE (and at least ``NEAR_WALL_FRACTION`` of it) of
more than FD_SETSIZE requested and rejected the rest; NOT SUPPORTED when it
served more, or served every requested connection past 1024 without rejecting
any; INCONCLUSIVE when the sweep never passed 1024, nothing was recorded, or
select stopped well below the wall (something else stopped it).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from bench.analyse.rules import (
    CLAIM_TEXT,
    INCONCLUSIVE,
    NEAR_WALL_FRACTION,
    NOT_SUPPORTED,
    SUPPORTED,
)
from bench.measure.scenarios import fd_limit
from bench.store import schema
from bench.store.results import RunData


def _served(row: pd.Series) -> float:
    for col in ("connections_served", "server_current_connections"):
        v = row.get(col)
        if v is not None and pd.notna(v):
            return float(v)
    return float("nan")


def _requested(row: pd.Series) -> float:
    v = row.get("connections_requested")
    if v is not None and pd.notna(v):
        return float(v)
    parts = [row.get("idle_connections"), row.get("active_connections")]
    return float(sum(int(p) for p in parts if p is not None and pd.notna(p)))


def claim1(run: RunData) -> dict[str, Any]:
    trials = run.trials
    rows = (
        trials[(trials["scenario"] == fd_limit.NAME) & (trials["status"] == "ok")]
        if not trials.empty
        else trials
    )
    evidence: dict[str, Any] = {"fd_setsize": schema.FD_SETSIZE}
    if not run.micro.empty:
        sel_micro = run.micro[run.micro["mechanism"] == "select"]["n_registered"].dropna()
        if not sel_micro.empty:
            evidence["micro_select_max_n_registered"] = int(sel_micro.max())
    per_backend: dict[str, Any] = {}
    for backend, grp in rows.groupby("backend") if not rows.empty else []:
        served = grp.apply(_served, axis=1)
        requested = grp.apply(_requested, axis=1)
        rejected = grp[["server_rejected_fd_setsize", "connections_rejected"]].fillna(0).max(axis=1)
        obs = sorted({str(o) for o in grp["client_observation"].dropna() if str(o)})
        per_backend[str(backend)] = {
            "max_connections_requested": float(requested.max()),
            "max_connections_served": float(served.max()),
            "median_connections_served": float(served.median()),
            "max_rejected": float(rejected.max()),
            "trials": len(grp),
            "client_observations": obs[:3],
        }
    evidence["backends"] = per_backend
    conditions = (
        "Linux, CPython select.select with int descriptors: it refuses any descriptor number "
        f">= {schema.FD_SETSIZE}, so the wall is on descriptor numbers, and the server's own "
        "descriptors (listening socket, stdio, control channel) use some of the 1024; poll and "
        "epoll are bounded only by RLIMIT_NOFILE"
    )
    base = {"id": "1", "claim": CLAIM_TEXT["1"], "conditions": conditions, "evidence": evidence}
    sel = per_backend.get("select")
    if sel is None:
        return {
            **base,
            "status": INCONCLUSIVE,
            "summary": "no fd-limit trial of select",
            "reason": "no usable fd-limit trial of the select backend",
        }
    served, requested, rejected = (
        sel["max_connections_served"],
        sel["max_connections_requested"],
        sel["max_rejected"],
    )
    others = ", ".join(
        f"{b} served {v['max_connections_served']:.0f}/{v['max_connections_requested']:.0f}"
        for b, v in per_backend.items()
        if b != "select"
    )
    summary = (
        f"select served at most {served:.0f} of {requested:.0f} connections, "
        f"rejected {rejected:.0f}"
        + (f"; {others}" if others else "")
        + (f"; client saw: {sel['client_observations'][0]}" if sel["client_observations"] else "")
    )
    if not math.isfinite(served):
        status, reason = (
            INCONCLUSIVE,
            "the fd-limit trials of select recorded no served-connection count",
        )
    elif served > schema.FD_SETSIZE:
        status, reason = (
            NOT_SUPPORTED,
            f"select served {served:.0f} > {schema.FD_SETSIZE} connections at once",
        )
    elif requested <= schema.FD_SETSIZE:
        status, reason = (
            INCONCLUSIVE,
            f"only {requested:.0f} connections requested: "
            f"the sweep never passed {schema.FD_SETSIZE}",
        )
    elif rejected <= 0 and served >= requested:
        status, reason = (
            NOT_SUPPORTED,
            "select served every requested connection past 1024 without rejecting any",
        )
    elif served < NEAR_WALL_FRACTION * schema.FD_SETSIZE:
        status = INCONCLUSIVE
        reason = (
            f"select served only {served:.0f}, well below {schema.FD_SETSIZE}: something other "
            "than FD_SETSIZE stopped it"
        )
    else:
        status = SUPPORTED
        reason = (
            f"select served {served:.0f} (<= {schema.FD_SETSIZE}) of {requested:.0f} requested and "
            f"rejected {rejected:.0f}"
        )
    return {**base, "status": status, "summary": summary, "reason": reason}
