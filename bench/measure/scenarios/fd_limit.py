"""fd-limit: offer servers more connections than select's FD_SETSIZE and see what each got.

The probe opens plain connections from bench itself, sends one request on each
and records what came back (a response, EOF, a reset, nothing), because here
what the clients saw is the result, not an error to count. select, poll and
epoll are all offered the same count, so the table shows what each held; the
select server's guard comes from its own start-up probe of ``select.select``
(``server_select_probe_error`` quotes CPython's refusal). Beside them select(2)
on descriptor bitmaps sized to RLIMIT_NOFILE (``registry.SELECT_PAST_FD_SETSIZE``,
c-select-big) shows where the 1,024 lives (claim 1). One repetition: the result
is a count that does not vary with noise.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.measure.drivers import drive_probe
from bench.measure.scenarios.registry import Scenario, register
from bench.measure.trial import Backends, Cell, Trial, backends_in
from bench.tables import Mode
from servers import registry

NAME = "fd-limit"
# Server start + connect + one request per connection. Five default runs on the 2-vCPU
# VM (2026-12-05, started_utc differences in trials.csv) spaced the 2,000-connection
# probes 0.18-0.29 s apart for poll and epoll and 0.65-0.79 s for select and c-select
# (which wait for the accept count to stall); 0.6 s + 150 us per connection (0.9 s at
# 2,000) keeps a margin over the slowest.
PROBE_OVERHEAD_S = 0.6
PROBE_S_PER_CONNECTION = 150e-6


@dataclass(frozen=True)
class FdLimitSettings:
    connections: int = 2000
    backends: Backends = registry.PYTHON_MECHANISMS


# The descriptor-limited backends (select's FD_SETSIZE) of the C and external families.
_OTHER_LIMITED = registry.Role(
    families=(registry.FAMILY_C, registry.FAMILY_EXTERNAL), fd_limited=True
)


def cells(settings: FdLimitSettings, cfg: object) -> list[Cell]:
    chosen: tuple[str, ...] = cfg.backends  # type: ignore[attr-defined]
    backends = backends_in(settings.backends, chosen) or (
        ("select",) if "select" in chosen else chosen[:1]
    )
    return [Cell(NAME, Mode.PROBE, 0, 0, None, probe_connections=settings.connections,
                 backends=backends)]  # fmt: skip


def estimate_s(trial: Trial) -> float:
    return PROBE_OVERHEAD_S + PROBE_S_PER_CONNECTION * trial.probe_connections


SCENARIO = register(
    Scenario(
        name=NAME,
        summary="more connections than FD_SETSIZE, one request each; what each client saw",
        presets={
            # c-select-big at 2,000: about +0.9 s of plan (PROBE_OVERHEAD_S and
            # PROBE_S_PER_CONNECTION), quick's one cell past 1,024 for it.
            "quick": FdLimitSettings(
                backends=registry.PYTHON_MECHANISMS
                | registry.Role(families=(registry.FAMILY_C,), fd_limited=True)
                | registry.SELECT_PAST_FD_SETSIZE
            ),
            # HAProxy's select poller holds at most 499 clients (two descriptors
            # each within FD_SETSIZE); past it clients wait unanswered.
            "standard": FdLimitSettings(
                connections=8000,
                backends=registry.PYTHON_MECHANISMS
                | _OTHER_LIMITED
                | registry.SELECT_PAST_FD_SETSIZE,
            ),
            # Up to the descriptor ceiling: the probe holds every connection in bench's
            # own process (no load-generator workers), so the count is RLIMIT_NOFILE
            # (20,000 here) less bench's and the server's own descriptors (doctor's
            # FD_MARGIN, 64); 19,000 keeps a margin. c-epoll beside c-select, and
            # c-select-big: select(2) itself at 19,000.
            "full": FdLimitSettings(
                connections=19000,
                backends=registry.PYTHON_MECHANISMS
                | _OTHER_LIMITED
                | registry.Role(families=(registry.FAMILY_C,), mechanisms=("epoll",))
                | registry.SELECT_PAST_FD_SETSIZE,
            ),
            "tiny": FdLimitSettings(
                connections=1040,
                backends=registry.Role(families=(registry.FAMILY_PYTHON_LOOP,), fd_limited=True),
            ),
        },
        cells=cells,
        driver=drive_probe,
        estimate_s=estimate_s,
        max_repetitions=1,
        charts=("fd_limit_connections",),
    )
)
