"""What claim 2 shows beside each decision: ratios on other metrics and the mechanism's share.

None of it decides a status (``RULES["claim2_shown"]``, ``RULES["all_active_mechanism"]``):
the whole machine's CPU per request and closed-loop throughput as ratios beside the
primary one, the wait call's share of server CPU per request and its CPU per event,
the micro benchmark's every-descriptor-ready rows, and, for an undecided cell, what
the data show about why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bench import metrics
from bench.analyse.intervals import CellSides, RatioEstimate, ratio_interval
from bench.analyse.rules import (
    CLAIM2_METRIC,
    EFFECT_MARGIN,
    EQUIVALENCE_BOUNDS,
    EQUIVALENCE_CONFIDENCE,
    MACHINE_CPU_COLUMN,
    THROUGHPUT_COLUMN,
    WAIT_SHARE_MATERIAL,
)
from bench.analyse.stats import nearest_level
from servers import registry


def _sides(cell: pd.DataFrame, top: str, bottom: str, col: str) -> CellSides:
    """``top``'s values of ``col`` over ``bottom``'s, with each value's repetition."""
    if col not in cell.columns:
        return CellSides([], [], [], [])
    # numpy masks, not row selections of the frame: this runs for every compared cell.
    values = cell[col].to_numpy(dtype=float, na_value=np.nan)
    backend = _backends(cell)
    reps = cell["repetition"].to_numpy()
    num = (backend == top) & ~np.isnan(values)
    den = (backend == bottom) & ~np.isnan(values)
    return CellSides(
        values[num].tolist(), values[den].tolist(), reps[num].tolist(), reps[den].tolist()
    )


def _backends(rows: pd.DataFrame) -> np.ndarray:
    return rows["backend"].astype(object).to_numpy()


def _ratio(sides: CellSides, confidence: float) -> RatioEstimate:
    return ratio_interval(
        sides.numerator, sides.denominator, sides.numerator_blocks, sides.denominator_blocks,
        confidence=confidence,
    )  # fmt: skip


def _geo(values: np.ndarray) -> float:
    v = values[np.isfinite(values) & (values > 0)]
    return float(np.exp(np.log(v).mean())) if len(v) else float("nan")


def _column(rows: pd.DataFrame, name: str) -> np.ndarray:
    if name not in rows.columns:
        return np.full(len(rows), np.nan)
    return pd.to_numeric(rows[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _wait_share(rows: pd.DataFrame) -> np.ndarray:
    """Each trial's wait-call share of its server CPU per request."""
    return (
        _column(rows, metrics.SERVER_WAIT_US_PER_CALL.name)
        * _column(rows, metrics.SERVER_WAIT_CALLS.name)
        / _column(rows, metrics.REQUESTS.name)
        / _column(rows, CLAIM2_METRIC)
    )


def wait_share(rows: pd.DataFrame) -> float:
    """The wait call's share of server CPU per request, geometric mean over repetitions."""
    return _geo(_wait_share(rows))


def mechanism_view(cell: pd.DataFrame, backends: Sequence[str]) -> dict[str, Any]:
    """Per backend: the wait call's share of CPU per request and its CPU per event."""
    out = {}
    shares = _wait_share(cell)
    per_events = _column(cell, metrics.SERVER_WAIT_US_PER_EVENT.name)
    names = _backends(cell)
    for b in backends:
        mine = names == b
        share, per_event = _geo(shares[mine]), _geo(per_events[mine])
        # None, not NaN, where the run did not record it (verdicts compare equal, JSON is strict).
        out[b] = {
            "wait_share_of_cpu_per_request": share if math.isfinite(share) else None,
            "wait_us_per_event": per_event if math.isfinite(per_event) else None,
            "n": int(mine.sum()),
        }
    return out


def micro_all_ready(
    micro: pd.DataFrame | None, backends: Sequence[str], connections: int
) -> dict[str, Any]:
    """The micro benchmark's every-descriptor-ready row nearest ``connections``, per backend."""
    if micro is None or micro.empty:
        return {}
    rows = micro[micro["ready"] == "all"]
    out: dict[str, Any] = {}
    for b in backends:
        try:
            mech = registry.get(b).mechanism
        except registry.UnknownBackend:
            continue
        mine = rows[rows["mechanism"] == mech]
        n = nearest_level(mine["n_registered"].tolist(), connections)
        if n is None:
            continue
        at = mine[mine["n_registered"].astype(float) == n]["median_us"].astype(float)
        median = float(at.median())
        out[b] = {
            "n_registered": int(n),
            "median_us_per_call": median,
            "us_per_ready_descriptor": median / n if n else float("nan"),
            "note": "every registered descriptor ready; in-process, decides nothing",
        }
    return out


def _shown_ratio(
    cell: pd.DataFrame, top: str, bottom: str, col: str, definition: str
) -> dict[str, Any]:
    """A ratio shown beside the decision (decides nothing), or why it is missing."""
    if col not in cell.columns or not cell[col].notna().any():
        return {"recorded": False, "ratio_definition": definition,
                "note": f"this run did not record {col} here"}  # fmt: skip
    est = _ratio(_sides(cell, top, bottom, col), EQUIVALENCE_CONFIDENCE)
    return {"recorded": True, "ratio_definition": definition, **est.as_dict(),
            "note": "shown; decides nothing"}  # fmt: skip


def shown_ratios(cell: pd.DataFrame, subject: str, other: str, closed: bool) -> dict[str, Any]:
    """The ratios shown beside a comparison (``RULES["claim2_shown"]``)."""
    machine = _shown_ratio(
        cell, other, subject, MACHINE_CPU_COLUMN,
        f"other's whole-machine CPU per request / {subject}'s",
    )  # fmt: skip
    if not closed:
        throughput = {"recorded": False, "note": "open loop: the request rate was set"}
    else:
        throughput = _shown_ratio(
            cell, subject, other, THROUGHPUT_COLUMN, f"{subject}'s closed-loop throughput / other's"
        )
    return {"machine_cpu_per_request": machine, "throughput": throughput}


def _pct(x: float | None) -> str:
    return f"{x:.1%}" if x is not None and math.isfinite(x) else "n/a"


def undecided_reason(
    decision: RatioEstimate, view: dict[str, Any], subject: str, other: str
) -> str:
    """What the data show in an INCONCLUSIVE cell (``RULES["all_active_mechanism"]``)."""
    parts = []
    shares = {b: v["wait_share_of_cpu_per_request"] for b, v in view.items()}
    known = [s for s in shares.values() if s is not None]
    if len(known) == len(shares) == 2 and max(known) < WAIT_SHARE_MATERIAL:
        parts.append(
            f"the wait call is {_pct(shares[subject])} ({subject}) and {_pct(shares[other])} "
            f"({other}) of server CPU per request here: the mechanism cannot move this cell by "
            f"{WAIT_SHARE_MATERIAL:.0%}"
        )
    lo, hi = decision.ci_low, decision.ci_high
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0:
        parts.append("fewer than 2 usable repetitions on a side: no interval")
    elif hi / lo > EFFECT_MARGIN**2:
        parts.append(
            f"the {EQUIVALENCE_CONFIDENCE:.0%} interval spans x{hi / lo:.2f}, wider than the "
            f"margin's x{EFFECT_MARGIN**2:.2f}: too few or too noisy repetitions to decide"
        )
    else:
        edge = EQUIVALENCE_BOUNDS[1] if hi > EQUIVALENCE_BOUNDS[1] else EQUIVALENCE_BOUNDS[0]
        parts.append(
            f"the {EQUIVALENCE_CONFIDENCE:.0%} interval is narrower than the margin but "
            f"crosses its edge at {edge:.3g}: the ratio lies near the edge"
        )
    return "; ".join(parts)
