"""Claim 1: can select watch at most FD_SETSIZE (1024) descriptors per process?

Judged from the fd-limit scenario: the most connections the select server
served at once, against the connections requested and rejected. SUPPORTED when
select served at most FD_SETSIZE (and at least ``NEAR_WALL_FRACTION`` of it) of
more than FD_SETSIZE requested and rejected the rest; NOT SUPPORTED when it
served more, or served every requested connection past 1024 without rejecting
any; INCONCLUSIVE when the sweep never passed 1024, nothing was recorded, or
select stopped well below the wall (something else stopped it).

Judged per family (``RULES["families"]``): "select" is the family's backend
whose mechanism is select (``select``, ``c-select``, ``haproxy-select``).

Beside the status, where the 1024 lives (``RULES["claim1_limit_location"]``):
shown when a select backend that declares no descriptor-number limit
(``registry.SELECT_PAST_FD_SETSIZE``: ``c-select-big``, select(2) on bitmaps
sized to RLIMIT_NOFILE) served more than FD_SETSIZE connections at once; and the
error select itself raised, as the run recorded it (``server_select_probe_error``).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from bench import metrics
from bench.analyse.families import FamilyRoles, assemble_claim, per_family
from bench.analyse.rules import (
    CLAIM_TEXT,
    FD_NUMBER_LIMIT_COLUMN,
    INCONCLUSIVE,
    LIMIT_LOCATION_NONE_MEASURED,
    LIMIT_LOCATION_NOT_SHOWN,
    LIMIT_LOCATION_PYTHON_ERROR,
    LIMIT_LOCATION_SHOWN,
    NEAR_WALL_FRACTION,
    NOT_SUPPORTED,
    SELECT_ERROR_COLUMN,
    SELECT_ERROR_NONE,
    SELECT_ERROR_QUOTED,
    SUPPORTED,
)
from bench.measure.scenarios import fd_limit
from bench.store import schema
from bench.store.results import RunData
from bench.tables import TrialStatus
from servers import registry


def _served(row: pd.Series) -> float:
    for col in (metrics.CONNECTIONS_SERVED.name, metrics.SERVER_CURRENT_CONNECTIONS.name):
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


# What "select" is in each family, and where its wall is.
CONDITIONS = {
    registry.FAMILY_PYTHON_LOOP: (
        "Linux, CPython select.select with int descriptors: it refuses any descriptor number "
        f">= {schema.FD_SETSIZE}, so the wall is on descriptor numbers, and the server's own "
        "descriptors (listening socket, stdio, control channel) use some of the 1024; poll and "
        "epoll are bounded only by RLIMIT_NOFILE"
    ),
    registry.FAMILY_C: (
        f"Linux, select(2) in the C twin: an fd_set has {schema.FD_SETSIZE} bits, so the loop "
        f"refuses (closes) any descriptor numbered >= {schema.FD_SETSIZE}; the wall is on "
        "descriptor numbers and the server's own descriptors use some of it; c-poll and "
        "c-epoll are bounded only by RLIMIT_NOFILE"
    ),
}
GENERIC_CONDITIONS = (
    "Linux, the family's select backend ({select}): how it meets FD_SETSIZE is the server's "
    "own (a limit on descriptor numbers, or a connection cap in its configuration); its poll "
    "and epoll backends are bounded by RLIMIT_NOFILE and their own configuration"
)


LIMIT_LOCATION_RULE = "claim1_limit_location"


def is_unbounded_select(backend: str) -> bool:
    """A select backend that declares no descriptor-number limit (c-select-big)."""
    try:
        declared = registry.get(backend)
    except registry.UnknownBackend:
        return False
    return registry.SELECT_PAST_FD_SETSIZE.admits(declared)


def _registry_rank(backend: str) -> int:
    names = registry.names()
    return names.index(backend) if backend in names else len(names)


def select_error(rows: pd.DataFrame) -> dict[str, str] | None:
    """The first error a select backend itself recorded in ``rows`` (registry order), if any."""
    if rows.empty or SELECT_ERROR_COLUMN not in rows.columns:
        return None
    for backend in sorted(rows["backend"].dropna().astype(str).unique(), key=_registry_rank):
        errors = rows.loc[rows["backend"] == backend, SELECT_ERROR_COLUMN].dropna().astype(str)
        errors = errors[errors.str.strip() != ""]
        if not errors.empty:
            return {"backend": backend, "error": str(errors.iloc[0])}
    return None


def _past_fd_setsize(rows: pd.DataFrame, per_backend: dict[str, Any]) -> dict[str, Any]:
    """What each select backend without a descriptor-number limit served, and its limit."""
    out: dict[str, Any] = {}
    for backend, seen in per_backend.items():
        if not is_unbounded_select(backend):
            continue
        limits = (
            rows.loc[rows["backend"] == backend, FD_NUMBER_LIMIT_COLUMN].dropna()
            if FD_NUMBER_LIMIT_COLUMN in rows.columns
            else pd.Series(dtype=float)
        )
        out[backend] = {
            "max_connections_served": seen["max_connections_served"],
            "max_connections_requested": seen["max_connections_requested"],
            # Under the trial table's column name: the limit the server reported.
            FD_NUMBER_LIMIT_COLUMN: int(limits.max()) if not limits.empty else None,
        }
    return out


def limit_location(
    blocks: list[tuple[FamilyRoles, dict[str, Any]]], python_error: dict[str, str] | None
) -> dict[str, Any]:
    """Where the 1024 lives, from every family's select backends past FD_SETSIZE."""
    past = {
        b: v
        for _, block in blocks
        for b, v in (block["evidence"].get("past_fd_setsize") or {}).items()
    }
    base: dict[str, Any] = {"rule": LIMIT_LOCATION_RULE, "backend": None, "served": None}
    best = max(past, key=lambda b: past[b]["max_connections_served"], default=None)
    served = past[best]["max_connections_served"] if best is not None else float("nan")
    if best is None or not (math.isfinite(served) and served > schema.FD_SETSIZE):
        detail = (
            LIMIT_LOCATION_NONE_MEASURED
            if best is None
            else ", ".join(
                f"{b} served {v['max_connections_served']:.0f}/{v['max_connections_requested']:.0f}"
                for b, v in past.items()
            )
        )
        sentence = LIMIT_LOCATION_NOT_SHOWN.format(fd_setsize=schema.FD_SETSIZE, detail=detail)
        return {**base, "shown": False, "sentence": sentence}
    nofile = past[best][FD_NUMBER_LIMIT_COLUMN]
    sentence = LIMIT_LOCATION_SHOWN.format(
        backend=best,
        served=f"{served:.0f}",
        requested=f"{past[best]['max_connections_requested']:.0f}",
        nofile=nofile if nofile is not None else "not recorded",
        fd_setsize=schema.FD_SETSIZE,
        python_error=LIMIT_LOCATION_PYTHON_ERROR.format(**python_error) if python_error else "",
    )
    return {**base, "shown": True, "sentence": sentence, "backend": best, "served": served}


def _select_micro_evidence(micro: pd.DataFrame) -> dict[str, Any]:
    if micro.empty:
        return {}
    sel_micro = micro[micro["mechanism"] == "select"]["n_registered"].dropna()
    return {"micro_select_max_n_registered": int(sel_micro.max())} if not sel_micro.empty else {}


def claim1_family(
    trials: pd.DataFrame, roles: FamilyRoles, micro: pd.DataFrame | None = None
) -> dict[str, Any]:
    """Claim 1 for one family: its select backend in fd-limit (``RULES["claim1"]``)."""
    select = roles.comparators[0] if roles.comparators else None
    select = select if select and registry.get(select).mechanism == "select" else None
    every = trials[trials["scenario"] == fd_limit.NAME] if not trials.empty else trials
    rows = every[every["status"] == TrialStatus.OK] if not every.empty else every
    evidence: dict[str, Any] = {"fd_setsize": schema.FD_SETSIZE}
    if micro is not None:
        evidence.update(_select_micro_evidence(micro))
    per_backend: dict[str, Any] = {}
    for backend, grp in rows.groupby("backend") if not rows.empty else []:
        served = grp.apply(_served, axis=1)
        requested = grp.apply(_requested, axis=1)
        rejected = (
            grp[[metrics.SERVER_REJECTED_FD_SETSIZE.name, metrics.CONNECTIONS_REJECTED.name]]
            .fillna(0)
            .max(axis=1)
        )
        obs = sorted({str(o) for o in grp[metrics.CLIENT_OBSERVATION.name].dropna() if str(o)})
        per_backend[str(backend)] = {
            "max_connections_requested": float(requested.max()),
            "max_connections_served": float(served.max()),
            "median_connections_served": float(served.median()),
            "max_rejected": float(rejected.max()),
            "trials": len(grp),
            "client_observations": obs[:3],
        }
    evidence["backends"] = per_backend
    # select's start-up refusal is recorded whatever became of the trial.
    evidence["select_error"] = select_error(every)
    evidence["past_fd_setsize"] = _past_fd_setsize(rows, per_backend)
    conditions = CONDITIONS.get(roles.family) or GENERIC_CONDITIONS.format(select=select)
    base = {"id": "1", "claim": CLAIM_TEXT["1"], "conditions": conditions, "evidence": evidence}
    sel = per_backend.get(select) if select else None
    if sel is None:
        name = select or f"{roles.label} family's select"
        return {
            **base,
            "status": INCONCLUSIVE,
            "summary": f"no fd-limit trial of {name}",
            "reason": f"no usable fd-limit trial of the {name} backend",
        }
    served, requested, rejected = (
        sel["max_connections_served"],
        sel["max_connections_requested"],
        sel["max_rejected"],
    )
    # The wall is on descriptors: HAProxy counts two per client (RULES["claim1"]).
    per_client = registry.get(select).descriptors_per_client
    held = served * per_client
    evidence["descriptors_per_client"] = per_client
    in_descriptors = f" ({held:.0f} descriptors)" if per_client != 1 else ""
    others = ", ".join(
        f"{b} served {v['max_connections_served']:.0f}/{v['max_connections_requested']:.0f}"
        for b, v in per_backend.items()
        if b != select
    )
    summary = (
        f"{select} served at most {served:.0f} of {requested:.0f} connections, "
        f"rejected {rejected:.0f}"
        + (f"; {others}" if others else "")
        + (f"; client saw: {sel['client_observations'][0]}" if sel["client_observations"] else "")
    )
    if not math.isfinite(served):
        status, reason = (
            INCONCLUSIVE,
            f"the fd-limit trials of {select} recorded no served-connection count",
        )
    elif held > schema.FD_SETSIZE:
        status, reason = (
            NOT_SUPPORTED,
            f"{select} served {served:.0f} connections at once{in_descriptors}"
            f" > {schema.FD_SETSIZE}",
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
            f"{select} served every requested connection past 1024 without rejecting any",
        )
    elif held < NEAR_WALL_FRACTION * schema.FD_SETSIZE:
        status = INCONCLUSIVE
        reason = (
            f"{select} served only {served:.0f}{in_descriptors}, well below "
            f"{schema.FD_SETSIZE}: something other than FD_SETSIZE stopped it"
        )
    else:
        status = SUPPORTED
        weight = f" x {per_client} descriptors = {held:.0f}" if per_client != 1 else ""
        reason = (
            f"{select} served {served:.0f}{weight} (<= {schema.FD_SETSIZE}) of {requested:.0f} "
            f"requested and rejected {rejected:.0f}"
        )
    return {**base, "status": status, "summary": summary, "reason": reason}


def _note(_roles: FamilyRoles, block: dict[str, Any]) -> str:
    return str(block["reason"])


def claim1(run: RunData) -> dict[str, Any]:
    """Claim 1 per family, with the overall status (``RULES["family_overall"]``)."""
    blocks = per_family(
        run.trials,
        lambda rows, roles, headline: claim1_family(rows, roles, run.micro if headline else None),
    )
    out = assemble_claim(blocks, _note)
    errors = {r.family: b["evidence"]["select_error"] for r, b in blocks}
    # CPython's own words, quoted where the sentence names CPython's check.
    python_error = errors.get(registry.FAMILY_PYTHON_LOOP)
    out["limit_location"] = limit_location(blocks, python_error)
    quoted = next((e for e in errors.values() if e), None)
    out["select_error"] = {
        "backend": quoted["backend"] if quoted else None,
        "error": quoted["error"] if quoted else None,
        "sentence": SELECT_ERROR_QUOTED.format(**quoted) if quoted else SELECT_ERROR_NONE,
    }
    return out
