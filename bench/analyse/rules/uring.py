"""The io_uring question, "does io_uring beat epoll?", written before any io_uring data.

Fixed on 2026-12-05, before the first io_uring backend measured anything (issue
18): the same test, margin and confidence as claim 2 and the same flatness rule as
claim 3, so io_uring is judged by the yardstick epoll was.
"""

from __future__ import annotations

from bench.analyse.rules.thresholds import (
    CLAIM2_METRIC,
    EFFECT_MARGIN,
    EQUIVALENCE_BOUNDS,
    EQUIVALENCE_CONFIDENCE,
    INCONCLUSIVE,
    MARGIN_TEXT,
    MIN_CONNECTIONS_FOR_MECHANISM,
    TOLERANCE_REL_INCREASE,
)

URING_RULES_WRITTEN = "2026-12-05"
# The mechanisms asked about (servers.registry): readiness through io_uring inside the
# same event loop, and a completion server (multishot accept and receive, sends as
# submissions), C only.
URING_READINESS_MECHANISM = "uring-poll"
URING_COMPLETION_MECHANISM = "uring-completion"
URING_MECHANISMS = (URING_READINESS_MECHANISM, URING_COMPLETION_MECHANISM)
# What each is compared with. Multishot poll is edge-triggered only (the kernel
# refuses IORING_POLL_ADD_LEVEL with IORING_POLL_ADD_MULTI: -EINVAL on Linux 6.18, a
# design fact found while building it, before any measurement), so readiness through
# io_uring is compared with the family's edge-triggered epoll, the same loop's same
# drain-until-EAGAIN path; the completion server, which has no readiness at all, with
# the family's level-triggered epoll, the default a server is written with.
URING_BASELINE = {URING_READINESS_MECHANISM: "epoll-et", URING_COMPLETION_MECHANISM: "epoll"}
URING_METRIC = CLAIM2_METRIC
URING_MARGIN = EFFECT_MARGIN
URING_CONFIDENCE = EQUIVALENCE_CONFIDENCE
URING_BETTER, URING_WORSE = "io_uring better", "io_uring worse"
URING_YES, URING_NO, URING_PARTLY = "YES", "NO", "PARTLY"
URING_DIFFER = "ANSWERS DIFFER"

URING_RULES: dict[str, str] = {
    "uring_cell": (
        f"(Written {URING_RULES_WRITTEN}, before any io_uring data.) Per family, io_uring "
        "mechanism and cell of claim 2's regimes (RULES['regimes'], with the io_uring backend "
        "in epoll's place and its baseline in the other's): readiness through io_uring "
        "(multishot poll, edge-triggered only) against the family's edge-triggered epoll, the "
        "completion server against the family's level-triggered epoll. The efficiency ratio "
        f"on server CPU per request ({URING_METRIC}), the baseline's / io_uring's, from the "
        "same linear model as claim 2, with "
        f"its {URING_CONFIDENCE:.0%} interval, i.e. two one-sided tests at "
        f"{(1 - URING_CONFIDENCE) / 2:.0%} each, against a margin of +-10% on the log scale "
        f"{MARGIN_TEXT}: EQUIVALENT when the interval lies inside the margin; "
        f"{URING_BETTER} when it lies above {EQUIVALENCE_BOUNDS[1]:.2f}; {URING_WORSE} when it "
        f"lies below {EQUIVALENCE_BOUNDS[0]:.3f}; INCONCLUSIVE otherwise. All-active cells "
        f"with fewer than {MIN_CONNECTIONS_FOR_MECHANISM} connections are shown, not judged."
    ),
    "uring_regime": (
        "A regime's (idle-heavy, all-active) status for one io_uring mechanism: the class "
        "every judged cell shares (every, not any: an intersection-union test, so each cell "
        "at 5% per side keeps the regime's error at 5% without a multiplicity correction); "
        "INCONCLUSIVE when no cell could be judged, a judged cell is undecided, or cells were "
        "decided differently (named)."
    ),
    "uring": (
        "Does io_uring beat epoll? Per family and io_uring mechanism: "
        f"{URING_YES} when every judged regime is {URING_BETTER}; {URING_NO} when every judged "
        f"regime is EQUIVALENT or {URING_WORSE}; {URING_PARTLY} when some regimes are "
        f"{URING_BETTER} and the others EQUIVALENT or {URING_WORSE} (named); {INCONCLUSIVE} "
        "when a regime is undecided or none was measured. A mechanism a family lacks, or that "
        "this machine cannot run (bench doctor names the cause), is absent with its reason."
    ),
    "uring_flat": (
        "io_uring readiness and the completion server judged for flatness like epoll in claim "
        "3: the growth of the in-server wait call's CPU time per call (io_uring_enter for the "
        "io_uring backends) over idle-scaling's idle counts, with the same fit and interval; "
        f"flat when the 95% interval lies inside (-{TOLERANCE_REL_INCREASE:.0%}, "
        f"+{TOLERANCE_REL_INCREASE:.0%}), growing when its lower end is above 0 and it is not "
        "flat, falling (suspect) when its upper end is below 0 and it is not flat, unclear "
        "otherwise."
    ),
    "uring_overall": (
        "(Written 2026-12-06, before the first run that measured io_uring in the default "
        "preset.) The question's overall answer: the answer every family and io_uring "
        f"mechanism measured shares, {URING_DIFFER} (each named) when they differ; readiness "
        "and completion are different designs, so neither outvotes the other."
    ),
}
