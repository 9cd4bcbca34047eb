"""Claim 1 from select itself (issue 9, item 6): the select server asks select.select about
descriptors numbered FD_SETSIZE - 1 and FD_SETSIZE at start-up, records CPython's own
refusal, and derives its guard from that answer, falling back on FD_SETSIZE (and saying so)
when RLIMIT_NOFILE leaves no descriptor numbered FD_SETSIZE to probe."""

from __future__ import annotations

import select
import socket

import pytest

from servers import registry
from servers.backends.select_probe import probe_select
from servers.config import ServerConfig
from servers.limits import FD_SETSIZE
from servers.stats import ServerStats

# CPython's message (Modules/selectmodule.c, seq2set) for a descriptor >= FD_SETSIZE.
CPYTHON_REFUSAL = "ValueError: filedescriptor out of range in select()"


def test_select_server_reports_select_refusing_fd_setsize(start_server) -> None:
    srv = start_server("select", "echo")
    stats = srv.stats()
    for source in (srv.ready_info, stats.as_dict()):
        assert source["fd_number_limit"] == FD_SETSIZE
        assert source["select_probe_error"] == CPYTHON_REFUSAL
        assert source["select_probe_status"] == (
            f"select.select accepted descriptor {FD_SETSIZE - 1} and refused {FD_SETSIZE}"
        )


@pytest.mark.parametrize("backend", ["poll", "epoll"])
def test_other_backends_run_no_probe(start_server, backend: str) -> None:
    stats = start_server(backend, "echo").stats()
    assert stats.fd_number_limit is None
    assert stats.select_probe_error is None and stats.select_probe_status is None


def test_probe_that_cannot_run_says_so_and_falls_back(start_server) -> None:
    srv = start_server("select", "echo", max_fds=256)
    stats = srv.stats()
    assert stats.fd_number_limit == FD_SETSIZE
    assert stats.select_probe_error is None
    status = stats.select_probe_status or ""
    assert status.startswith("probe not run") and "RLIMIT_NOFILE" in status, status
    assert f"falls back on FD_SETSIZE {FD_SETSIZE}" in status, status


def test_probe_in_process_finds_cpythons_boundary() -> None:
    probe = probe_select()
    assert (probe.limit, probe.error) == (FD_SETSIZE, CPYTHON_REFUSAL)


def _refuse_from(limit: int):
    real = select.select

    def fake(rlist, wlist, xlist, timeout=None):
        if any(fd >= limit for fd in (*rlist, *wlist)):
            raise ValueError(f"refused from {limit}")
        return real(rlist, wlist, xlist, timeout)

    return fake


def test_guard_is_derived_from_the_probe_not_the_constant(monkeypatch) -> None:
    """A select that refused from 600 would get a guard of 600, found by bisection."""
    monkeypatch.setattr(select, "select", _refuse_from(600))
    probe = probe_select()
    assert (probe.limit, probe.error) == (600, "ValueError: refused from 600")
    assert "refused 600" in probe.status and "accepted descriptor 599" in probe.status
    stats = ServerStats("select", "echo", wait_instrumented=False, fd_number_limit=FD_SETSIZE)
    listener = socket.create_server(("127.0.0.1", 0))
    factory = registry.get("select").load_factory()
    server = factory(ServerConfig(backend="select", instrumentation=False), listener, stats)
    try:
        assert server.backend.fd_limit == stats.fd_number_limit == 600
        assert stats.select_probe_error == "ValueError: refused from 600"
    finally:
        server._shutdown()  # closes the listener and the loop's own descriptors


def test_a_select_that_refuses_nothing_gets_no_guard(monkeypatch) -> None:
    monkeypatch.setattr(select, "select", lambda r, w, x, t=None: ([], [], []))
    probe = probe_select()
    assert probe.limit is None and probe.error is None
    assert "no guard" in probe.status
