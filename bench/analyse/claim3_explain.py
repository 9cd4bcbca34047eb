"""Where epoll's added time per request goes when its closed-loop throughput falls (claim 3).

Shown beside claim 3's closed-loop wall time per request; it decides nothing.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench import metrics
from bench.analyse.slopes import SlopeFit


def _geo(values: pd.Series) -> float:
    v = values.astype(float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.exp(np.log(v).mean())) if len(v) else float("nan")


def throughput_explanation(
    rows: pd.DataFrame, fit: SlopeFit | None, subject: str | None
) -> str | None:
    """Where the subject's added time per request goes when its closed-loop throughput falls."""
    if fit is None or not (math.isfinite(fit.rel_increase) and fit.rel_increase > 0):
        return None
    ep = rows[rows["backend"] == subject]
    lo = ep[ep["idle_connections"].astype(float) == fit.x_min]
    hi = ep[ep["idle_connections"].astype(float) == fit.x_max]
    if lo.empty or hi.empty:
        return None

    def parts(cell: pd.DataFrame) -> tuple[float, float, float, float]:
        wall = _geo(1e6 / cell[metrics.THROUGHPUT_RPS.name].astype(float))
        cpu = _geo(cell[metrics.SERVER_CPU_US_PER_REQ.name])
        per_req = (
            cell[metrics.SERVER_WAIT_US_PER_CALL.name].astype(float)
            * cell[metrics.SERVER_WAIT_CALLS.name].astype(float)
            / cell[metrics.REQUESTS.name].astype(float)
        )
        return _geo(cell[metrics.THROUGHPUT_RPS.name]), wall, cpu, _geo(per_req)

    (t1, w1, c1, q1), (t2, w2, c2, q2) = parts(lo), parts(hi)
    text = (
        f"{subject}'s closed-loop throughput went from {t1:,.0f} to {t2:,.0f} requests/s between "
        f"{fit.x_min:.0f} and {fit.x_max:.0f} idle connections (geometric means), wall time per "
        f"request {w1:.1f} -> {w2:.1f} us"
    )
    if all(math.isfinite(v) for v in (c1, c2, q1, q2)) and w2 > w1:
        added = w2 - w1
        text += (
            f"; of the {added:.1f} us added, {q2 - q1:+.1f} us is inside the wait call, "
            f"{(c2 - q2) - (c1 - q1):+.1f} us is other server CPU per request and "
            f"{(w2 - c2) - (w1 - c1):+.1f} us is not server CPU (waiting for the client or "
            "the other CPU)"
        )
    return text
