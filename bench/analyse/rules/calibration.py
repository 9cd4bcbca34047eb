"""What the A/A check (``bench run --calibrate``, ``bench calibration``) counts as a false call."""

from __future__ import annotations

CALIBRATION_RULES = {
    "calibration": (
        "An A/A run (bench run --calibrate) measures one server declared as the select, "
        "poll and epoll of the same-server family, in the preset's idle- and active-scaling "
        "cells: the truth is 'equivalent everywhere, nothing grows'. A false call is: claim 2 "
        "SUPPORTED or PARTLY SUPPORTED for the family, or one of its regimes SUPPORTED; a "
        "judged claim-2 comparison classed 'epoll better' or 'epoll worse'; claim 3 NOT "
        "SUPPORTED for the family's epoll; any backend's growth on a claim-3 metric classed "
        "'growing'; edge vs level decided other than EQUIVALENT. Each rule should make a "
        "false call in at most 5% of runs (the synthetic tests check 800 simulated runs per rule)."
    ),
}
