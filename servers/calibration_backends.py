"""The same-server family: one server declared as select, poll and epoll, for the A/A check.

``bench run --calibrate`` runs the harness against itself: every member of
this family is the Python epoll server (``servers.backends.epoll_backend``),
declared under the mechanisms select, poll and epoll, so the verdict's roles
(subject epoll, comparators select and poll) fall on identical servers and
every "better", "worse" or "growing" call it makes is a false one.

Not imported by default (the full preset plans every registered backend, and
these must not appear there): ``bench run --calibrate`` names this module in
SELECTBENCH_PLUGINS, which the server subprocesses inherit.
"""

from __future__ import annotations

from servers.registry import FAMILY_SAME_SERVER, Backend, register

MODULE = __name__
_FACTORY = "servers.backends.epoll_backend:make_server"

# Greys, so a chart never mistakes them for a real mechanism's colour.
SAME_SERVER_BACKENDS = (
    Backend(
        name="aa-select", family=FAMILY_SAME_SERVER, mechanism="select", wait_instrumented=True,
        fd_number_limit=None, colour="#252525", factory=_FACTORY,
        description="the Python epoll server declared as select (A/A calibration)",
    ),
    Backend(
        name="aa-poll", family=FAMILY_SAME_SERVER, mechanism="poll", wait_instrumented=True,
        fd_number_limit=None, colour="#737373", factory=_FACTORY,
        description="the Python epoll server declared as poll (A/A calibration)",
    ),
    Backend(
        name="aa-epoll", family=FAMILY_SAME_SERVER, mechanism="epoll", wait_instrumented=True,
        fd_number_limit=None, colour="#bdbdbd", factory=_FACTORY,
        description="the Python epoll server declared as epoll (A/A calibration)",
    ),
)  # fmt: skip

for _backend in SAME_SERVER_BACKENDS:
    register(_backend)
