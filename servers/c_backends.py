"""Registers the C twin servers: c-select, c-poll, c-epoll, c-epoll-et (family "c"), and
the io_uring completion server c-uring.

The same loop, protocols, limits and counters as the Python event-loop
backends (servers.eventloop), written in C (servers/c/) and built by
`pip install -e .` as the optional extension servers._cloop. Without a C
compiler the backends stay registered and `unavailable_reason()` says what is
missing and how to install it.
"""

from __future__ import annotations

from servers.limits import FD_SETSIZE
from servers.registry import FAMILY_C, Backend, register

# servers.c_server imports the extension: if that fails, Backend.unavailable_reason()
# quotes its ImportError (which names the missing compiler or headers) and this hint.
_REQUIRES = ("servers.c_server",)
_HINT = "apt-get install gcc python3-dev, then pip install -e . again"

# Darker shades of the Python twins' hues (select red, poll orange, epoll blue,
# epoll-et cyan), so a chart pairs each twin by colour and tells the families apart.
C_BACKENDS = (
    Backend(
        name="c-select", family=FAMILY_C, mechanism="select", wait_instrumented=True,
        fd_number_limit=FD_SETSIZE, colour="#7f0000",
        factory="servers.c_server:make_c_select", requires=_REQUIRES, install_hint=_HINT,
        description="select(2) in the C event loop; refuses descriptor numbers >= FD_SETSIZE",
    ),
    Backend(
        name="c-poll", family=FAMILY_C, mechanism="poll", wait_instrumented=True,
        fd_number_limit=None, colour="#a63603",
        factory="servers.c_server:make_c_poll", requires=_REQUIRES, install_hint=_HINT,
        description="poll(2) in the C event loop",
    ),
    Backend(
        name="c-epoll", family=FAMILY_C, mechanism="epoll", wait_instrumented=True,
        fd_number_limit=None, colour="#08306b",
        factory="servers.c_server:make_c_epoll", requires=_REQUIRES, install_hint=_HINT,
        description="epoll(7), level-triggered, in the C event loop",
    ),
    Backend(
        name="c-epoll-et", family=FAMILY_C, mechanism="epoll-et", wait_instrumented=True,
        fd_number_limit=None, colour="#016c59",
        factory="servers.c_server:make_c_epoll_et", requires=_REQUIRES, install_hint=_HINT,
        description="epoll(7), edge-triggered (EPOLLET), in the C event loop",
    ),
)  # fmt: skip

# Not a twin: the same protocols, counters and limits, but its own loop (no readiness
# mechanism). servers.c_uring fails to import, with the cause and the remedy, where the
# build has no liburing or the kernel refuses io_uring.
C_URING = Backend(
    name="c-uring", family=FAMILY_C, mechanism="uring-completion", wait_instrumented=True,
    fd_number_limit=None, colour="#7a0177",
    factory="servers.c_uring:make_c_uring", requires=(*_REQUIRES, "servers.c_uring"),
    install_hint="c-uring needs liburing-dev at build time and Linux 6.0+ with io_uring allowed",
    description="io_uring completions in C: multishot accept, multishot receive into provided "
    "buffers, sends as submissions; one io_uring_enter per loop pass",
)  # fmt: skip

for _backend in (*C_BACKENDS, C_URING):
    register(_backend)
