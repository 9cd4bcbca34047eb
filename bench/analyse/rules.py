"""Every threshold the verdict applies and every rule in words, in one place, fixed before the data.

The claim modules read their numbers from here; ``RULES`` holds the texts that
``verdict.json`` carries and ``report.md`` quotes verbatim, so what is applied
and what is written cannot drift apart. A rule changes here, in one line, or
not at all.
"""

from __future__ import annotations

import math

from bench.measure.columns import STEAL_FRACTION_MAX
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

# ---------------------------------------------------------------- claim 3
# Growth over the measured range beyond which a cost "grows". 20% because
# repeated cells on the 2-vCPU reference VM agree only to about 10-15%, so a
# tighter bound would call noise a slope, while an O(N) mechanism is far
# beyond it (micro benchmark, quick preset: one select call 2.3 us at 16
# descriptors, 83 us at 1,000; poll 1.7 us at 16, 358 us at 4,000).
TOLERANCE_REL_INCREASE = 0.20
MIN_LEVELS = 3
MIN_REPS_PER_LEVEL = 2

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

# ---------------------------------------------------------------- claim 1
NEAR_WALL_FRACTION = 0.90  # select serving >= 90% of FD_SETSIZE counts as "at the wall"

# ---------------------------------------------------------------- trials left out
# Applied by the analysis to the columns the runner records (the runner does not
# flag these itself, so the thresholds live here only). Fixed before the data.
# A closed-loop server busy less than this share of the window waited for its client.
CLIENT_BOUND_BUSY_FRACTION = 0.90
# Open loop: the client's send lag is material when its p99 exceeds this share of p99.
SEND_LAG_P99_FRACTION = 0.25
BUSY_COLUMN = "server_busy_fraction"
SEND_LAG_COLUMN = "send_lag_p99_us"

# ---------------------------------------------------------------- steal
# A fault, not an outcome: a window in which the hypervisor took more than 5% of
# the machine's CPU time has unreliable CPU figures (steal lowers the time charged
# to the server and the client alike). The runner flags such a trial, so the bound
# is declared beside the runner's other flags (bench.measure.columns, which
# measure can import) and stated here: STEAL_FRACTION_MAX.
STEAL_COLUMN = "steal_fraction"

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
EDGE_BETTER, EDGE_WORSE, EQUIVALENT = "edge better", "edge worse", "EQUIVALENT"
FAMILIES_DIFFER = "FAMILIES DIFFER"

CLAIM_TEXT = {
    "1": "select can watch at most FD_SETSIZE (1024) descriptors per process",
    "2": "epoll is 'triggered' while select 'polls', so epoll is more efficient",
    "3": "epoll does not slow down as the number of descriptors grows",
}

SUPPORTED, PARTLY, NOT_SUPPORTED, INCONCLUSIVE = schema.VERDICT_STATUSES

_MARGIN = f"[{EQUIVALENCE_BOUNDS[0]:.3f}, {EQUIVALENCE_BOUNDS[1]:.2f}]"

RULES: dict[str, str] = {
    "intervals": (
        f"Every interval is a {CONFIDENCE:.0%} interval over repetitions (claim 2's decisions use "
        f"{EQUIVALENCE_CONFIDENCE:.0%}) and names its method. The typical value of a cell: "
        "Student's t interval on log values (an interval for the geometric mean, n - 1 degrees "
        "of freedom). A ratio between two backends in one cell: a linear model on log values "
        "fitted by least squares (statsmodels) to every cell of the sweep (one family, scenario, "
        "loop mode and metric) for the two backends, log y = mean per cell and backend + "
        "repetition (fixed) + position in the repetition (linear) + error, one residual "
        "variance for the pair; the ratio is the contrast of the two means in the cell with "
        "Student's t on the residual degrees of freedom (runs that recorded no position have "
        "no position term and say so). With fewer than "
        f"{MIN_MODEL_DF} residual degrees of freedom, or a side without a value in the cell, "
        "Student's t interval on the per-repetition differences of log values when both were "
        f"measured in at least {MIN_PAIRS} of the same repetitions, else Welch's t interval on "
        "log values, the method naming why; "
        "the ratio shown is the ratio of geometric means. A growth against descriptors: least "
        "squares on log values, log(cost) = block + b position + log(1 + g (N - N_min)), one "
        "block per repetition and a linear term in the position within the repetition (none "
        "for runs that recorded no position), with the profile interval for g from the F "
        "distribution; the growth over "
        "the range is g (N_max - N_min) and the slope per 1,000 descriptors is 1,000 g times "
        "the fitted cost at N_min. Micro benchmarks run in several fresh processes, each timing "
        "every count of the mechanism in interleaved blocks; a process's value per count is "
        "the median over its blocks, and the same fit takes one block per process (the process, "
        "not the serially correlated block, is the unit of replication); a run from before the "
        "processes has one value per count and keeps the one-block fit whose variance is the "
        "larger of the scatter around the line and the benchmarks' own standard errors. "
        "No bootstrap: with 3 repetitions a percentile "
        "bootstrap of the median returns the cell's min-max, which covers the median 75% of the "
        "time (1 - 2 x 0.5^3)."
    ),
    "flat": (
        "Claim 3, per metric and backend: flat when the upper end of the 95% interval of the "
        f"growth over the measured range is below {TOLERANCE_REL_INCREASE:.0%}; growing when its "
        f"lower end is above {TOLERANCE_REL_INCREASE:.0%}; unclear otherwise; insufficient with "
        f"fewer than {MIN_LEVELS} descriptor counts or, for in-server metrics, fewer than "
        f"{MIN_REPS_PER_LEVEL} usable repetitions at some count."
    ),
    "claim3_metric": (
        "A metric supports claim 3 when epoll is flat on it and every measured one of select "
        "and poll grows on it (so the sweep could show growth); it refutes claim 3 when epoll "
        "grows on it; otherwise it is inconclusive."
    ),
    "claim3": (
        "Claim 3 is SUPPORTED only when no metric shows epoll growing beyond "
        f"{TOLERANCE_REL_INCREASE:.0%} and at least one shows it flat with confidence; NOT "
        f"SUPPORTED when at least one metric shows it growing beyond {TOLERANCE_REL_INCREASE:.0%} "
        "with confidence; INCONCLUSIVE otherwise. Every metric is judged and shown: the "
        "in-server wait-call cost (CPU time per call), server CPU per request, the micro "
        "benchmark (one wait call, one descriptor ready) and closed-loop wall time per request "
        "(1 / throughput) against idle connections, with an account of where the time goes "
        "when throughput falls."
    ),
    "equivalence": (
        "Claim 2, per cell and per comparison (epoll against select, against poll): epoll's "
        "efficiency ratio (closed loop: epoll's throughput / the other's; open loop: the other's "
        f"CPU per request / epoll's) with its {EQUIVALENCE_CONFIDENCE:.0%} interval, i.e. two "
        f"one-sided tests at {(1 - EQUIVALENCE_CONFIDENCE) / 2:.0%} each, against a margin of "
        f"+-10% on the log scale {_MARGIN}: EQUIVALENT when the interval lies inside the margin; "
        f"epoll better when it lies above {EQUIVALENCE_BOUNDS[1]:.2f}; epoll worse when it lies "
        f"below {EQUIVALENCE_BOUNDS[0]:.3f}; INCONCLUSIVE otherwise."
    ),
    "claim2_regime": (
        "A regime supports claim 2 when every judged comparison in it shows epoll better; it "
        "refutes claim 2 when every judged comparison shows EQUIVALENT or epoll worse; "
        "otherwise it is INCONCLUSIVE (nothing to judge, some comparisons undecided, or decided "
        "both ways). Every, not any: this is an intersection-union test, so each comparison at "
        "5% per side keeps the regime's error at 5% without a multiplicity correction, while "
        "'any' would let one of up to 8 comparisons decide by chance."
    ),
    "claim2": (
        "Claim 2 is SUPPORTED when both regimes support it, PARTLY SUPPORTED when exactly one "
        "does, NOT SUPPORTED when both refute it, INCONCLUSIVE otherwise."
    ),
    "regimes": (
        f"Idle-heavy: the idle-scaling cell with the idle count nearest {IDLE_HEAVY_TARGET_N:,} "
        "that epoll and the other backend share, in closed loop (throughput) when both have "
        f"at least {MIN_PAIRS} usable repetitions there, else in open loop (CPU per request at "
        f"the same request rate) when both have {MIN_PAIRS} there, else in the first of the two "
        "with any (shown with 'fewer than 2 usable repetitions'). The 'at least "
        f"{MIN_PAIRS}' was added on 2026-12-02 after five default runs in which the closed-loop "
        "cell at 1,000 idle kept one usable repetition of select or poll (the others were "
        "client-bound, RULES['client_bound']) and so could judge nothing, while the open-loop "
        "cell beside it had all three: before, the open loop was used only when the closed "
        "loop had no usable trial at all. It picks the cell by how many repetitions it holds, "
        "never by its result, and the open-loop comparison can find epoll better, equivalent "
        "or worse like the closed one. "
        "All-active: every connection count of active-scaling that both share, plus the "
        "closed-loop idle-scaling cell with 0 idle connections when active-scaling did not "
        "measure its count; each cell is judged on its own."
    ),
    "mechanism_cells": (
        f"All-active cells with fewer than {MIN_CONNECTIONS_FOR_MECHANISM} connections are shown "
        "but neither judged nor pooled: with so few descriptors the scan select and poll do on "
        "every call costs about what an epoll call costs (micro benchmark, quick preset: one "
        "poll call over 16 descriptors 1.7 us, epoll 0.9 us, against about 10 us of server CPU "
        "per request), so such a cell measures per-request work and the client, not polling "
        "against triggering."
    ),
    "client_bound": (
        "A closed-loop trial whose server was busy less than "
        f"{CLIENT_BOUND_BUSY_FRACTION:.0%} of the measured window ({BUSY_COLUMN}: server CPU "
        "time / window wall time, from the server's schedstat) is client-bound: the load "
        "generator, not the server, set its pace. It is left out of the verdict like a flagged "
        "trial. Runs that did not record the column say so; nothing is guessed for them."
    ),
    "steal": (
        f"A trial whose measured window lost more than {STEAL_FRACTION_MAX:.0%} of the "
        f"machine's CPU time to the hypervisor ({STEAL_COLUMN}: steal time from /proc/stat / "
        "(window wall time x CPUs online)) is flagged by the runner and left out like every "
        "flagged trial: a fault of the machine, not an outcome, since stolen time is missing "
        "from the CPU time the kernel charges to the server and the client. Trials of runs "
        "that did not record the column carry no steal flag; none is guessed for them."
    ),
    "send_lag": (
        "An open-loop trial whose load generator's own send lag at p99 exceeds "
        f"{SEND_LAG_P99_FRACTION:.0%} of the measured p99 latency ({SEND_LAG_COLUMN} > "
        f"{SEND_LAG_P99_FRACTION} x latency_p99_us) measured the client as much as the server "
        "(the corrected latency counts from the intended send time): its latency percentiles "
        "are left out of the latency charts. Its server CPU per request and throughput stay "
        "in: the client's lateness moves when a request is sent, not what the server spends "
        "on it (a rate that falls short is flagged on its own). The verdict judges no "
        "latency. Runs that did not record the column say so; nothing is guessed for them."
    ),
    "warnings": (
        "Warnings recorded in run.json (for instance a machine that was not quiet when the run "
        "started) are copied into the verdict and the report; they change no status."
    ),
    "claim1": (
        "Claim 1 is SUPPORTED when, offered more than FD_SETSIZE connections in the fd-limit "
        "scenario, select served at most FD_SETSIZE descriptors' worth of connections at once "
        f"and at least {NEAR_WALL_FRACTION:.0%} of it; NOT SUPPORTED when it served more than "
        "that at once, or every requested connection without rejecting any; INCONCLUSIVE when "
        "the sweep never passed FD_SETSIZE, nothing was recorded, or select stopped below "
        f"{NEAR_WALL_FRACTION:.0%} of FD_SETSIZE (something else stopped it). A connection "
        "weighs the descriptors its server counts per client (the backend registry: 1 for our "
        "servers, 2 for HAProxy). That weight was added after the full run of 2026-12-02, in "
        "which haproxy-select's 499 clients (998 descriptors) read as 'well below' 1024; it "
        "applies both ways (more than 512 HAProxy clients would refute the claim)."
    ),
    "families": (
        "Every claim is judged separately for each family of backends in the backend registry "
        "that has a level-triggered epoll backend (the Python event loop, the C twins, external "
        "servers such as HAProxy), with the same rules and on that family's own trials only. "
        "In every rule 'epoll' means the family's backend whose mechanism is epoll, 'select' and "
        "'poll' its backends whose mechanisms are select and poll (found by family and "
        "mechanism, the first registered of each, never by name). The Python event-loop family "
        "is always judged and is the headline: the claim's conditions, reason and evidence are "
        "its own, and the reference points (asyncio, uvloop, threads) and backends this "
        "checkout does not know are shown with it. Another family is judged when the run holds "
        "at least one trial of one of its backends. The micro benchmarks time Python's select "
        "module in-process and count for the Python family only."
    ),
    "family_overall": (
        "A claim's overall status across the families judged: a family's status is decided "
        "when it is SUPPORTED, PARTLY SUPPORTED or NOT SUPPORTED. The overall status is the "
        "status every decided family shares when they all agree (with one family judged, that "
        "family's status); PARTLY SUPPORTED when decided families differ, the split named "
        "family by family; INCONCLUSIVE when no family decided. An INCONCLUSIVE family neither "
        "confirms nor breaks the agreement and is named with its reason. No family weighs more "
        "than another: exchanging two families' data exchanges their names in the sentence, "
        "never the status. One sentence says where the families agree and where they differ."
    ),
    "edge_vs_level": (
        "Edge- against level-triggered epoll, per family that has both backends in the run "
        "(the family's mechanisms epoll-et and epoll), in the cells of claim 2's regimes "
        "(RULES['regimes'], with epoll-et in epoll's place and epoll in the other's): the "
        "efficiency ratio (closed loop: epoll-et's throughput / epoll's; open loop: epoll's CPU "
        f"per request / epoll-et's) with its {EDGE_CONFIDENCE:.0%} interval, i.e. two one-sided "
        f"tests at {(1 - EDGE_CONFIDENCE) / 2:.0%} each, against a margin of +-10% on the log "
        f"scale {_MARGIN}: EQUIVALENT when the interval lies inside the margin; edge better "
        f"when it lies above {EQUIVALENCE_BOUNDS[1]:.2f}; edge worse when it lies below "
        f"{EQUIVALENCE_BOUNDS[0]:.3f}; INCONCLUSIVE otherwise. All-active cells with fewer than "
        f"{MIN_CONNECTIONS_FOR_MECHANISM} connections are shown but not judged."
    ),
    "edge_vs_level_family": (
        "A family's (and a regime's) edge-vs-level status: EQUIVALENT, edge better or edge "
        "worse when every judged cell has that class (every, not any: an intersection-union "
        "test, so the error stays at 5% per side without a multiplicity correction); "
        "INCONCLUSIVE when no cell could be judged, some judged cell is undecided, or judged "
        "cells were decided in different ways (named in the reason)."
    ),
    "edge_vs_level_overall": (
        "Edge vs level across families: the status every decided family (EQUIVALENT, edge "
        "better or edge worse) shares when they all agree; FAMILIES DIFFER, the split named, "
        "when decided families differ; INCONCLUSIVE when no family decided or no family had "
        "both backends in the run. An INCONCLUSIVE family neither confirms nor breaks the "
        "agreement and is named with its reason; no family weighs more than another."
    ),
}
