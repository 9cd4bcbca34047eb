"""Registers HAProxy as three backends: haproxy-select, haproxy-poll, haproxy-epoll ("external").

A real server no one here wrote, switched between readiness mechanisms with its
own flags (-de disables epoll, -dp poll), answering HTTP itself with one thread
on the server CPU (servers.haproxy_server). Without the haproxy binary the
backends stay registered and `unavailable_reason()` names the install line.
"""

from __future__ import annotations

from dataclasses import dataclass

from servers.haproxy_config import FDS_PER_CONNECTION, INSTALL_HINT, maxconn_for, missing_reason
from servers.limits import FD_SETSIZE
from servers.registry import FAMILY_EXTERNAL, Backend, register


@dataclass(frozen=True)
class ExternalBackend(Backend):
    """A backend that runs a program: unavailable while that program is not installed."""

    # HAProxy answers HTTP itself; it has no echo.
    protocols: tuple[str, ...] = ("http",)
    descriptors_per_client: int = FDS_PER_CONNECTION

    def unavailable_reason(self) -> str | None:
        return super().unavailable_reason() or missing_reason(self.name)

    def max_clients(self, nofile: int) -> int | None:
        # Its maxconn: two descriptors per connection, so at RLIMIT_NOFILE 20,000 it holds
        # 9,987 clients; past that, connections wait in the backlog unanswered (the full
        # preset's 16,000-idle cells failed with every active connect timing out).
        return maxconn_for(self.mechanism, nofile)


# Lighter shades of the Python servers' hues (select red, poll orange, epoll blue), so a
# chart pairs each mechanism by colour and tells HAProxy from the Python and C families.
HAPROXY_BACKENDS = (
    ExternalBackend(
        name="haproxy-select", family=FAMILY_EXTERNAL, mechanism="select",
        wait_instrumented=False, fd_number_limit=FD_SETSIZE, colour="#fb6a4a",
        factory="servers.haproxy_server:make_haproxy_select", install_hint=INSTALL_HINT,
        description="HAProxy 2.6, select poller (-de -dp), one thread; maxconn 499, "
                    "as its select poller allows at most FD_SETSIZE descriptors",
    ),
    ExternalBackend(
        name="haproxy-poll", family=FAMILY_EXTERNAL, mechanism="poll",
        wait_instrumented=False, fd_number_limit=None, colour="#fdae6b",
        factory="servers.haproxy_server:make_haproxy_poll", install_hint=INSTALL_HINT,
        description="HAProxy 2.6, poll poller (-de), one thread",
    ),
    ExternalBackend(
        name="haproxy-epoll", family=FAMILY_EXTERNAL, mechanism="epoll",
        wait_instrumented=False, fd_number_limit=None, colour="#6baed6",
        factory="servers.haproxy_server:make_haproxy_epoll", install_hint=INSTALL_HINT,
        description="HAProxy 2.6, epoll poller (its default), one thread",
    ),
)  # fmt: skip

for _backend in HAPROXY_BACKENDS:
    register(_backend)
