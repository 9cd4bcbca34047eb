"""The verdict's thresholds and status words; the texts that quote them are in ``texts``."""

from __future__ import annotations

import math

from bench import metrics
from bench.measure.columns import STEAL_FRACTION_MAX as STEAL_FRACTION_MAX  # re-exported
from bench.measure.machine.disturbance import (  # re-exported: the runner flags by it
    DISTURBED_SHARE_MAX as DISTURBED_SHARE_MAX,
)
from bench.store import schema
from servers.registry import FAMILY_PYTHON_LOOP

# ---------------------------------------------------------------- intervals
CONFIDENCE = 0.95
# Two backends are paired by repetition when both were measured in at least
# this many of the same repetitions (a t interval needs 2 differences).
MIN_PAIRS = 2
# The linear model that pools a run's cells (bench.analyse.model) is fitted only
# with more residual degrees of freedom than a paired t over 3 repetitions has (2);
# else the paired t above.
MIN_MODEL_DF = 3

# When the rules below were last changed, after issue 16's review of earlier runs.
RULES_CHANGED = "2026-12-05"

# ---------------------------------------------------------------- claim 3
# Growth over the measured range inside which a cost is "flat", on both sides. 20%
# because repeated cells on the 2-vCPU reference VM agree only to about 10-15%, so a
# tighter bound would call noise a slope, while an O(N) mechanism is far beyond it
# (micro benchmark, quick preset: one select call 2.3 us at 16 descriptors, 83 us at
# 1,000; poll 1.7 us at 16, 358 us at 4,000).
TOLERANCE_REL_INCREASE = 0.20
MIN_LEVELS = 3
MIN_REPS_PER_LEVEL = 2
# A fit's class (flatness.classify_fit); the charts' words and claim 3 share them.
FLAT, GROWING, FALLING, UNCLEAR, INSUFFICIENT = (
    "flat", "growing", "falling", "unclear", "insufficient",
)  # fmt: skip
# Claim 3's primary metrics (the only ones that decide) and the secondary ones (shown).
CLAIM3_MICRO_LABEL = "micro wait call"
CLAIM3_WAIT_LABEL = "in-server wait call (CPU time)"
CLAIM3_CPU_LABEL = "server CPU per request"
CLAIM3_WALL_LABEL = "closed-loop wall time per request (1/throughput)"
PRIMARY, SECONDARY = "primary", "secondary"

# ---------------------------------------------------------------- claim 2
# "Better" / "worse" / "the same" are judged against a margin of 10% on the
# log scale, with a 90% interval: two one-sided tests at 5% each.
EFFECT_MARGIN = 1.10
EQUIVALENCE_BOUNDS = (1 / EFFECT_MARGIN, EFFECT_MARGIN)
EQUIVALENCE_LOG_MARGIN = math.log(EFFECT_MARGIN)
EQUIVALENCE_CONFIDENCE = 0.90
IDLE_HEAVY_TARGET_N = 1000
# All-active cells below this many connections cannot inform the mechanism.
MIN_CONNECTIONS_FOR_MECHANISM = 50
# The metric that decides claim 2 (and edge vs level), the ones shown beside it.
CLAIM2_METRIC = metrics.SERVER_CPU_US_PER_REQ.name
MACHINE_CPU_COLUMN = metrics.MACHINE_CPU_US_PER_REQ.name
THROUGHPUT_COLUMN = metrics.THROUGHPUT_RPS.name
# A wait call whose share of server CPU per request is below the margin (10%) cannot,
# even if one backend's call cost nothing, move the CPU-per-request ratio past it.
WAIT_SHARE_MATERIAL = EFFECT_MARGIN - 1
BETTER, WORSE, EQUIVALENT = "epoll better", "epoll worse", "EQUIVALENT"

# ---------------------------------------------------------------- claim 1
NEAR_WALL_FRACTION = 0.90  # select serving >= 90% of FD_SETSIZE counts as "at the wall"
# Where the 1,024 lives (RULES["claim1_limit_location"]): what select itself said at start-up,
# and the descriptor-number limit a server reported (RLIMIT_NOFILE for c-select-big).
SELECT_ERROR_COLUMN = metrics.SERVER_SELECT_PROBE_ERROR.name
FD_NUMBER_LIMIT_COLUMN = metrics.SERVER_FD_NUMBER_LIMIT.name

# ---------------------------------------------------------------- trials left out
# Applied by the analysis to the columns the runner records (the thresholds live
# here only). Fixed before the data.
# Sensitivity only: a closed-loop server busy less than this share of the window
# waited for its client.
CLIENT_BOUND_BUSY_FRACTION = 0.90
# Open loop: the client's send lag is material when its p99 exceeds this share of p99.
SEND_LAG_P99_FRACTION = 0.25
BUSY_COLUMN = metrics.SERVER_BUSY_FRACTION.name
SEND_LAG_COLUMN = metrics.SEND_LAG_P99_US.name
# The two analyses of the sensitivity block (verdict.json "sensitivity").
PRIMARY_ANALYSIS = "all fault-free trials"
CLIENT_BOUND_ANALYSIS = "client-bound trials left out"

# ---------------------------------------------------------------- steal
# A fault, not an outcome: a window in which the hypervisor took more than 5% of
# the machine's CPU time has unreliable CPU figures (paravirtual steal accounting
# takes it out of the schedstat CPU of the server and client alike). The runner
# flags such a trial, so the bound STEAL_FRACTION_MAX is declared beside its other
# flags (bench.measure.columns, which measure can import) and imported here.
STEAL_COLUMN = metrics.STEAL_FRACTION.name

# ---------------------------------------------------------------- disturbance
# A fault too: other processes took CPU time on the server's or the load generator's
# CPUs in the window. The runner flags such a trial (bench.measure.machine.disturbance, where
# DISTURBED_SHARE_MAX is declared with its reason); the analysis applies the same
# bound to the columns, so a run written by another runner is judged alike.
DISTURBED_COLUMNS = (metrics.FOREIGN_CPU_SHARE_SERVER.name, metrics.FOREIGN_CPU_SHARE_LOAD.name)

# ---------------------------------------------------------------- families
# Every claim is judged per family of backends (servers.registry): on each family's
# backends of these mechanisms, found by family and mechanism, never by name.
SUBJECT_MECHANISM = "epoll"
COMPARATOR_MECHANISMS = ("select", "poll")
EDGE_MECHANISM = "epoll-et"
# Always judged, and the claim's conditions, reason and evidence are its own.
HEADLINE_FAMILY = FAMILY_PYTHON_LOOP

# ---------------------------------------------------------------- edge vs level
# The same margin and confidence as claim 2's, fixed before any edge-triggered data.
EDGE_EFFECT_MARGIN = EFFECT_MARGIN
EDGE_CONFIDENCE = EQUIVALENCE_CONFIDENCE
EDGE_BETTER, EDGE_WORSE = "edge better", "edge worse"
FAMILIES_DIFFER = "FAMILIES DIFFER"

# ---------------------------------------------------------------- churn and crossover
CHURN_YES, CHURN_NO, CHURN_PARTLY = "YES", "NO", "PARTLY"
# A crossover fit needs this many active shares and residual degrees of freedom.
CROSSOVER_MIN_SHARES = 3
CROSSOVER_MIN_DF = 2

CLAIM_TEXT = {
    "1": "select can watch at most FD_SETSIZE (1024) descriptors per process",
    "2": "epoll is 'triggered' while select 'polls', so epoll is more efficient",
    "3": "epoll does not slow down as the number of descriptors grows",
}

SUPPORTED, PARTLY, NOT_SUPPORTED, INCONCLUSIVE = schema.VERDICT_STATUSES

MARGIN_TEXT = f"[{EQUIVALENCE_BOUNDS[0]:.3f}, {EQUIVALENCE_BOUNDS[1]:.2f}]"
