"""Registers the C twin servers: c-select, c-poll, c-epoll, c-epoll-et, c-select-big and
c-uring-poll (family "c"), and the io_uring completion server c-uring.

The same loop, protocols, limits and counters as the Python event-loop
backends (servers.eventloop), written in C (servers/c/) and built by
`pip install -e .` as the optional extension servers._cloop. Without a C
compiler the backends stay registered and `unavailable_reason()` says what is
missing and how to install it.

A C twin is three things: its adapter (servers/c/mech_<name>.c, which declares
itself with CL_MECHANISM), its line in setup.py's SOURCES, and its `_twin(...)`
line below, whose mechanism is the adapter's name (tests/test_c_module.py checks
that every twin declared here has an adapter in the build and the reverse).
"""

from __future__ import annotations

from servers.c_uring import URING_COMPLETION
from servers.limits import FD_SETSIZE
from servers.registry import FAMILY_C, URING_AVAILABILITY, URING_HINT, Backend, register

# servers.c_server imports the extension: if that fails, Backend.unavailable_reason()
# quotes its ImportError (which names the missing compiler or headers) and this hint.
_REQUIRES = ("servers.c_server",)
_HINT = "apt-get install gcc python3-dev, then pip install -e . again"


def _twin(
    mechanism: str,
    colour: str,
    description: str,
    *,
    fd_number_limit: int | None = None,
    edge_triggered: bool = False,
    install_hint: str = _HINT,
    availability: str | None = None,
) -> Backend:
    """The C twin ``c-<mechanism>``: the C loop on the adapter of that name."""
    return Backend(
        name=f"c-{mechanism}", family=FAMILY_C, mechanism=mechanism, wait_instrumented=True,
        fd_number_limit=fd_number_limit, colour=colour, edge_triggered=edge_triggered,
        factory="servers.c_server:make_c_server", requires=_REQUIRES, install_hint=install_hint,
        availability=availability, description=description,
    )  # fmt: skip


# Darker shades of the Python twins' hues (select red, poll orange, epoll blue,
# epoll-et cyan), so a chart pairs each twin by colour and tells the families apart.
C_BACKENDS = (
    _twin("select", "#7f0000",
          "select(2) in the C event loop; refuses descriptor numbers >= FD_SETSIZE",
          fd_number_limit=FD_SETSIZE),
    _twin("poll", "#a63603", "poll(2) in the C event loop"),
    _twin("epoll", "#08306b", "epoll(7), level-triggered, in the C event loop"),
    _twin("epoll-et", "#016c59", "epoll(7), edge-triggered (EPOLLET), in the C event loop",
          edge_triggered=True),
    # select(2) on heap bitmaps sized from RLIMIT_NOFILE (mech_select_big.c): crimson
    # beside c-select's dark red and select's marker, so on a chart it reads as c-select's
    # line going on past 1,024. Never the family's select role (bench.analyse.families
    # takes mechanism "select"); registry.SELECT_PAST_FD_SETSIZE names it.
    _twin("select-big", "#ce1256",
          "select(2) on descriptor bitmaps sized from RLIMIT_NOFILE, in the C event loop; "
          "no FD_SETSIZE limit"),
    # io_uring readiness (mech_uring_poll.c; olive, the Python uring-poll's hue darker):
    # built only where setup.py's liburing probe succeeds; whether this kernel lets it run
    # is asked at run time (servers.uring_availability). Edge-triggered, as the kernel
    # offers multishot poll.
    _twin("uring-poll", "#5c5c00",
          "io_uring multishot poll (edge-triggered), one io_uring_enter per loop pass, in the "
          "C event loop", edge_triggered=True, install_hint=URING_HINT,
          availability=URING_AVAILABILITY),
)  # fmt: skip

# Not a twin: the same protocols, counters, limits and glue (make_c_server), but its own
# loop (servers/c/uring_server.c), which the extension runs for this mechanism instead of
# a readiness adapter; built with the io_uring readiness sources, and servers.c_uring says
# whether this kernel runs it. Declared edge-triggered: a completion is reported once, never
# again while data waits, so the roles that want one level-triggered backend per readiness
# mechanism (quick's C cells) leave it out; full measures it.
C_URING = Backend(
    name="c-uring", family=FAMILY_C, mechanism=URING_COMPLETION, wait_instrumented=True,
    fd_number_limit=None, colour="#7a0177", marker="*", edge_triggered=True,
    factory="servers.c_server:make_c_server", requires=_REQUIRES, install_hint=URING_HINT,
    availability="servers.c_uring:unavailable_reason",
    description="io_uring completions in C: multishot accept, multishot receive into provided "
    "buffers, sends as submissions; one io_uring_enter per loop pass",
)  # fmt: skip

for _backend in (*C_BACKENDS, C_URING):
    register(_backend)
