"""Every threshold the verdict applies, in one place.

The claim modules (``claim1``, ``claim2``, ``claim3``) and the charts read their
yardsticks from here, so a rule is changed in one line and the report can
quote what was applied.
"""

from __future__ import annotations

from bench.store import schema

# Claim 3: "flat" means the projected increase over the measured range stays
# under this fraction. 20% because repeated cells on a 2-core VM agree only to
# about 10-15%, so a tighter bound would call noise a slope; an O(N) mechanism
# is far outside it (one select call: 3 us at 16 fds, 107 us at 1000).
TOLERANCE_REL_INCREASE = 0.20
# A noisy epoll fit whose slope is, with 95% confidence, under this fraction of
# the smallest slope select or poll showed is flat *for the claim's purpose*:
# its per-descriptor cost is at least 20 times smaller than the mechanisms the
# claim contrasts it with. See "Relative flatness" in bench.analyse.flatness.
RELATIVE_SLOPE_FRACTION = 0.05
# Text that marks a reason given by the relative rule (charts word such lines apart).
RELATIVE_RULE_MARK = "but its slope is at most"
MIN_LEVELS = 3
MIN_REPS_PER_LEVEL = 2
# Claim 2: "more efficient" means at least 10% better, interval included.
EFFECT_MARGIN = 1.10
IDLE_HEAVY_TARGET_N = 1000
# Claim 1: select serving >= 90% of FD_SETSIZE counts as "at the wall".
NEAR_WALL_FRACTION = 0.90
COMPARATORS = ("select", "poll")
SUBJECT = "epoll"

CLAIM_TEXT = {
    "1": "select can watch at most FD_SETSIZE (1024) descriptors per process",
    "2": "epoll is 'triggered' while select 'polls', so epoll is more efficient",
    "3": "epoll does not slow down as the number of descriptors grows",
}

SUPPORTED, PARTLY, NOT_SUPPORTED, INCONCLUSIVE = schema.VERDICT_STATUSES
