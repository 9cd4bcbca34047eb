"""Every rule in words: the texts ``verdict.json`` carries and ``report.md`` quotes verbatim.

Each text is built from the thresholds the claim modules apply
(``bench.analyse.rules.thresholds``), so what is applied and what is written
cannot drift apart.
"""

from __future__ import annotations

from bench.analyse.rules.history import HISTORY
from bench.analyse.rules.thresholds import (
    BUSY_COLUMN,
    CHURN_NO,
    CHURN_PARTLY,
    CHURN_YES,
    CLAIM2_METRIC,
    CLIENT_BOUND_BUSY_FRACTION,
    CONFIDENCE,
    CROSSOVER_MIN_DF,
    CROSSOVER_MIN_SHARES,
    DISTURBED_COLUMNS,
    DISTURBED_SHARE_MAX,
    EDGE_CONFIDENCE,
    EQUIVALENCE_BOUNDS,
    EQUIVALENCE_CONFIDENCE,
    FAMILIES_DIFFER,
    IDLE_HEAVY_TARGET_N,
    INCONCLUSIVE,
    MACHINE_CPU_COLUMN,
    MARGIN_TEXT,
    MIN_CONNECTIONS_FOR_MECHANISM,
    MIN_LEVELS,
    MIN_MODEL_DF,
    MIN_PAIRS,
    MIN_REPS_PER_LEVEL,
    NEAR_WALL_FRACTION,
    RULES_CHANGED,
    SELECT_ERROR_COLUMN,
    SEND_LAG_COLUMN,
    SEND_LAG_P99_FRACTION,
    STEAL_COLUMN,
    STEAL_FRACTION_MAX,
    TOLERANCE_REL_INCREASE,
    WAIT_SHARE_MATERIAL,
)

# Claim 1's sentences on where the 1,024 lives (RULES["claim1_limit_location"]), filled in
# by bench.analyse.claim1 from the run's fd-limit trials.
LIMIT_LOCATION_SHOWN = (
    "{backend} served {served} connections at once (of {requested} offered) with select(2) on "
    "descriptor bitmaps sized to RLIMIT_NOFILE ({nofile}): the kernel took descriptors "
    "numbered past {fd_setsize}, so the {fd_setsize} is not the kernel's. It is the size of "
    "glibc's fd_set (FD_SETSIZE bits, fixed at compile time; c-select uses it and refuses "
    "higher numbers) and CPython's check in select.select{python_error}. Nothing needs "
    "recompiling: a program that allocates a larger bitmap passes select(2) any descriptor "
    "below RLIMIT_NOFILE"
)
LIMIT_LOCATION_PYTHON_ERROR = " (in this run's {backend} server: {error})"
LIMIT_LOCATION_NOT_SHOWN = (
    "not shown by this run: no select backend with descriptor bitmaps past FD_SETSIZE "
    "served more than {fd_setsize} connections at once in fd-limit ({detail})"
)
LIMIT_LOCATION_NONE_MEASURED = "none was measured"
SELECT_ERROR_QUOTED = (
    "{error} (raised at start-up by the {backend} server's select for the first descriptor "
    f"number it refused; trials.csv column {SELECT_ERROR_COLUMN})"
)
SELECT_ERROR_NONE = "no select backend recorded an error in this run's fd-limit trials"

RULES: dict[str, str] = {
    "intervals": (
        f"Every interval is a {CONFIDENCE:.0%} interval over repetitions (claim 2's decisions use "
        f"{EQUIVALENCE_CONFIDENCE:.0%}) and names its method. The typical value of a cell: "
        "Student's t interval on log values (an interval for the geometric mean, n - 1 degrees "
        "of freedom). A ratio between two backends in one cell: a linear model on log values "
        "fitted by least squares (statsmodels) to every cell of the sweep (one family, scenario, "
        "loop mode and metric) for the two backends, log y = mean per cell and backend + "
        "repetition (fixed) + position in the repetition (linear) + error (changed 2026-12-06, "
        "see RULES['history']); the ratio is the contrast of the two means in the cell, its "
        "standard error heteroscedasticity-consistent (HC3), with Student's t on the residual "
        "degrees of freedom (runs that recorded no position have no position term and say "
        f"so). With fewer than {MIN_MODEL_DF} residual degrees of freedom, a side without a "
        "value in the cell or no HC3 standard error (a trial with leverage 1), "
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
        f"Claim 3, per metric and backend (changed {RULES_CHANGED}, see RULES['history']): "
        f"flat when the 95% interval of the growth over the measured range lies inside "
        f"(-{TOLERANCE_REL_INCREASE:.0%}, +{TOLERANCE_REL_INCREASE:.0%}); growing when its "
        "lower end is above 0 and it is not flat (growth shown with confidence, and not shown "
        "to stay within the margin); falling when its upper end is below 0 and it is not flat "
        "(a cost that falls with more descriptors: the measurement is suspect, never support); "
        f"unclear otherwise; insufficient with fewer than {MIN_LEVELS} descriptor counts or, "
        f"for in-server metrics, fewer than {MIN_REPS_PER_LEVEL} usable repetitions at some "
        "count."
    ),
    "claim3_metric": (
        "A metric supports claim 3 when epoll is flat on it and every measured one of the "
        "family's select and poll grows on it (so the sweep could show growth); it refutes "
        "claim 3 when epoll grows on it; otherwise it is inconclusive (epoll unclear, falling "
        "or insufficient, or the sweep showed no growth for select or poll)."
    ),
    "claim3": (
        f"Claim 3, per family (changed {RULES_CHANGED}, see RULES['history']). Primary "
        "metrics, fixed before the data: the micro benchmark's wait call (one descriptor "
        "ready; Python's select module in-process, so the Python family only) and the "
        "in-server wait call's CPU time per call (server_wait_us_per_call): for the family's "
        "epoll, from idle-steps when the run's plan measured it there (one server process per "
        "trial at every idle count in turn, closed loop, the process as the block), else from "
        "idle-scaling in closed loop (the server has work on every wake-up), in open loop only "
        "when the run's plan measured the family's idle-scaling in open loop alone; for its "
        "select and poll from idle-scaling (decided by the plan, never by the data). "
        "SUPPORTED only when epoll is flat on every primary metric "
        "available to the family and the sweep could show growth on each (RULES['claim3_metric'"
        "]); NOT SUPPORTED when epoll grows on any primary metric; INCONCLUSIVE otherwise, "
        "with a sentence saying which part is shown (for instance 'wait call flat in-process; "
        "servers not shown'). A family whose backends do not time their wait call (HAProxy) "
        "has no in-server primary metric and is INCONCLUSIVE for that reason. Secondary "
        "metrics, shown and never deciding: server CPU per request and closed-loop wall time "
        "per request (1 / throughput) against idle connections, with an account of where "
        "the time goes when throughput falls."
    ),
    "equivalence": (
        f"Claim 2, per cell and per comparison (epoll against select, against poll; changed "
        f"{RULES_CHANGED}, see RULES['history']): epoll's efficiency ratio on server CPU per "
        f"request ({CLAIM2_METRIC}), the other's CPU per request / epoll's, with its "
        f"{EQUIVALENCE_CONFIDENCE:.0%} interval, i.e. two one-sided tests at "
        f"{(1 - EQUIVALENCE_CONFIDENCE) / 2:.0%} each, against a margin of +-10% on the log "
        f"scale {MARGIN_TEXT}: EQUIVALENT when the interval lies inside the margin; epoll better "
        f"when it lies above {EQUIVALENCE_BOUNDS[1]:.2f}; epoll worse when it lies below "
        f"{EQUIVALENCE_BOUNDS[0]:.3f}; INCONCLUSIVE otherwise. Server CPU per request stays "
        "valid when the client sets the pace (the server's own CPU time per request it "
        "served), which closed-loop throughput does not."
    ),
    "claim2_shown": (
        "Beside each claim-2 (and edge-vs-level) comparison, shown and never deciding: the "
        f"same ratio on the whole machine's busy CPU per request ({MACHINE_CPU_COLUMN}: both "
        "CPUs, from /proc/stat, softirq included, since on loopback part of a wake-up is paid "
        "on the sending CPU) and, in closed loop, epoll's throughput / the other's, each with "
        f"its {EQUIVALENCE_CONFIDENCE:.0%} interval. Runs that did not record "
        f"{MACHINE_CPU_COLUMN} say so; nothing is guessed for them."
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
        f"(Changed {RULES_CHANGED}, see RULES['history'].) Idle-heavy: the idle-scaling cell "
        f"with the idle count nearest {IDLE_HEAVY_TARGET_N:,} (above 0) that the run's plan "
        "measured for both epoll and the other backend. All-active: every connection count of "
        "active-scaling that the plan measured for both, plus the closed-loop idle-scaling "
        "cell with 0 idle connections when active-scaling did not measure its count; each cell "
        "is judged on its own. In both regimes the loop is closed (the server has work on "
        "every wake-up) wherever the plan measured the pair in closed loop there, else open; "
        "the plan is every trial the run recorded, whatever its status, so the choice never "
        "depends on how many repetitions survived or on any result. A cell left with fewer "
        "than 2 usable repetitions on a side stays where it is and says so."
    ),
    "all_active_mechanism": (
        "Each all-active comparison (and every claim-2 cell) shows, for both backends, the "
        "wait call's share of server CPU per request (server_wait_us_per_call x "
        "server_wait_calls / requests / server_cpu_us_per_req, geometric mean over "
        "repetitions) and the wait call's CPU per ready event (server_wait_us_per_event); for "
        "the Python family the micro benchmark's every-descriptor-ready rows (ready = all) at "
        "the registered count nearest the cell's connections are shown beside it (decides "
        "nothing). An INCONCLUSIVE cell's reason says what the data show: when both backends' "
        f"wait call is under {WAIT_SHARE_MATERIAL:.0%} of server CPU per request, the "
        f"mechanism cannot move that cell by {WAIT_SHARE_MATERIAL:.0%} (even a wait call that "
        "cost nothing would not); the interval is called too wide for the margin only when "
        "its width exceeds the margin's."
    ),
    "mechanism_cells": (
        f"All-active cells with fewer than {MIN_CONNECTIONS_FOR_MECHANISM} connections are shown "
        "but neither judged nor pooled: with so few descriptors the scan select and poll do on "
        "every call costs about what an epoll call costs (micro benchmark, quick preset: one "
        "poll call over 16 descriptors 1.7 us, epoll 0.9 us, against about 10 us of server CPU "
        "per request), so such a cell measures per-request work and the client, not polling "
        "against triggering."
    ),
    "faults": (
        f"(Changed {RULES_CHANGED}, see RULES['history'].) Trials are left out of the verdict "
        "for faults only, never for their outcome: a failed trial, a trial the runner flagged "
        "(errors, connections short, a partial or broken window, a saturated load generator, "
        "an open-loop rate shortfall), and a trial whose machine lost more than "
        f"{STEAL_FRACTION_MAX:.0%} of its CPU time to steal ({STEAL_COLUMN}; the same bound "
        "as bench's quiet-machine check), and a trial disturbed by other processes on its "
        "CPUs (RULES['disturbed']). Runs that did not record steal or disturbance say so; "
        "nothing is guessed for them."
    ),
    "client_bound": (
        f"(Changed {RULES_CHANGED}, see RULES['history'].) A closed-loop trial whose server "
        f"was busy less than {CLIENT_BOUND_BUSY_FRACTION:.0%} of the measured window "
        f"({BUSY_COLUMN}: server CPU time / window wall time, from the server's schedstat) is "
        "client-bound: the load generator, not the server, may have set its pace. It stays in "
        "the verdict (which of a cell's trials the rule removes depends on their outcome, and "
        "a server slowed by steal or preemption looks the same); the rule is applied as a "
        "sensitivity analysis only (RULES['sensitivity']). Runs that did not record the "
        "column say so; nothing is guessed for them."
    ),
    "sensitivity": (
        "The whole verdict is computed twice: on every fault-free trial (the verdict), and "
        "with client-bound trials (RULES['client_bound']) also left out. verdict.json's "
        "'sensitivity' block lists every status (per claim, family and regime, claim 3's "
        "metrics, edge vs level, churn) from both side by side, and a sentence naming those "
        "that differ; the report shows the table."
    ),
    "steal": (
        f"A trial whose measured window lost more than {STEAL_FRACTION_MAX:.0%} of the "
        f"machine's CPU time to the hypervisor ({STEAL_COLUMN}: steal time from /proc/stat / "
        "(window wall time x CPUs online)) is flagged by the runner and left out like every "
        "flagged trial: a fault of the machine, not an outcome, since stolen time is missing "
        "from the CPU time the kernel charges to the server and the client. Trials of runs "
        "that did not record the column carry no steal flag; none is guessed for them."
    ),
    "disturbed": (
        "A trial in whose measured window other processes took more than "
        f"{DISTURBED_SHARE_MAX:.0%} of the server's CPU or of the load generator's CPUs "
        f"({' or '.join(DISTURBED_COLUMNS)}: per-CPU task time from /proc/stat less the "
        "trial's own processes' CPU time, over window wall time x those CPUs) is flagged "
        "'disturbed' by the runner and left out like every flagged trial: a fault of the "
        "machine (another benchmark, a build, a backup), not an outcome. The bound is about "
        "the throughput such a loss takes from a CPU-bound server, and above the error of "
        "/proc/stat's 10 ms ticks over the shortest window. Runs that did not record the "
        "columns carry no such flag; none is guessed for them."
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
        "servers, 2 for HAProxy); the weight applies both ways (more than 512 HAProxy clients "
        "would refute the claim). See RULES['history']."
    ),
    "claim1_limit_location": (
        "Claim 1 also says where FD_SETSIZE's 1024 lives, and changes no status with it (the "
        "claim is about select as programs get it: glibc's fd_set, Python's select module). "
        "Evidence: the fd-limit trials of the run's select backends that declare no "
        "descriptor-number limit in the backend registry (c-select-big: select(2) on "
        "descriptor bitmaps sized to RLIMIT_NOFILE). When one served more than FD_SETSIZE "
        "connections at once, the kernel's select(2) watched descriptors numbered past 1024, "
        "so the limit is glibc's fixed fd_set and CPython's select.select check, not the "
        "kernel, and nothing needs recompiling. When none did (or none was measured), the "
        "verdict says where the 1024 lives is not shown and names no place. The error select "
        "itself raised (the select server's start-up probe, trials.csv column "
        f"{SELECT_ERROR_COLUMN}) is quoted as recorded, per family and for the claim."
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
        "efficiency ratio on server CPU per request, epoll's / epoll-et's, with its "
        f"{EDGE_CONFIDENCE:.0%} interval, i.e. two one-sided tests at "
        f"{(1 - EDGE_CONFIDENCE) / 2:.0%} each, against a margin of +-10% on the log scale "
        f"{MARGIN_TEXT}: EQUIVALENT when the interval lies inside the margin; edge better when it "
        f"lies above {EQUIVALENCE_BOUNDS[1]:.2f}; edge worse when it lies below "
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
    "churn_cell": (
        "Churn, per family, idle level and comparison (epoll against the family's select and "
        "poll): the ratio of server CPU per new connection (server CPU time in the measured "
        "window / connections the server accepted in it), the other's / epoll's, paired by "
        f"repetition (else Welch), with its {EQUIVALENCE_CONFIDENCE:.0%} t interval on log "
        f"values, i.e. two one-sided tests at {(1 - EQUIVALENCE_CONFIDENCE) / 2:.0%} each, "
        f"against a margin of +-10% on the log scale {MARGIN_TEXT}: epoll better when the interval "
        f"lies above {EQUIVALENCE_BOUNDS[1]:.2f}, epoll worse when it lies below "
        f"{EQUIVALENCE_BOUNDS[0]:.3f}, EQUIVALENT when it lies inside the margin, INCONCLUSIVE "
        f"otherwise; the {CONFIDENCE:.0%} interval is shown beside it."
    ),
    "churn": (
        "Does epoll's advantage survive churn? Per family: an idle level keeps the advantage "
        "when every comparison there is epoll better, loses it when every comparison is "
        "EQUIVALENT or epoll worse, and is undecided otherwise (every, not any: an "
        "intersection-union test, so no multiplicity correction). "
        f"{CHURN_YES} when every measured idle level above 0 keeps it; {CHURN_NO} when every "
        f"one loses it; {CHURN_PARTLY} when some keep it and the others lose it (named); "
        f"{INCONCLUSIVE} when an idle level above 0 is undecided or none was measured. The "
        "0-idle level is shown (what epoll_ctl costs with no idle set to spare a scan of) and "
        "decides nothing. Across families: the answer every decided family "
        f"({CHURN_YES}, {CHURN_NO}, {CHURN_PARTLY}) shares, {FAMILIES_DIFFER} when they "
        f"differ, {INCONCLUSIVE} when none decided."
    ),
    "crossover": (
        "Crossover (ready-fraction scenario, closed loop), per family, registered count and "
        "comparison (epoll against the family's select and poll), on two ratios that are "
        "above 1.0 when epoll is ahead: throughput, epoll's / the other's (fault-free trials "
        "that are not client-bound, RULES['client_bound']: a throughput the client set is the "
        "client's), and server CPU per request, the other's / epoll's (the other's trial not "
        "client-bound; epoll's fault-free, client-bound allowed, because epoll's CPU per "
        "request does not depend on how many descriptors each wait call returns). It answers "
        "where, not whether, and carries no status. At each active share (active / registered "
        f"connections) the ratio with its {CONFIDENCE:.0%} paired t interval on log values (by "
        "repetition, else Welch); over the shares, least squares on the per-repetition log "
        "ratios of log(ratio) = c + log(1 + g (1/share - 1/share_max)), i.e. ratio = A + "
        "B/share (a cost per request every mechanism pays plus select's or poll's scan of "
        "every registered descriptor, shared among the ready ones). The crossover is the "
        f"share where the fitted ratio is 1.0; its {CONFIDENCE:.0%} interval is the profile "
        "confidence set (every share s where some curve with ratio(s) = 1 has a residual sum "
        "of squares within t^2 sigma^2 of the best, n - 2 degrees of freedom), reported inside "
        "the measured shares, an end open when the set reaches it (the crossover may lie "
        "beyond it, or not exist). When the fitted ratio does not reach 1.0 inside the measured "
        "shares: no crossover inside the measured range, epoll ahead (ratio above 1.0) or "
        f"behind throughout. Fewer than {CROSSOVER_MIN_SHARES} shares or "
        f"{CROSSOVER_MIN_DF} residual degrees of freedom: insufficient. A lack-of-fit F test "
        "against one mean per share is shown beside each fit; it changes nothing."
    ),
    "history": HISTORY,
}
