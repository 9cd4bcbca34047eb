"""HAProxy backends without running HAProxy: the declarations, the install line when the binary
is missing, descriptor budgets, the configuration, the poller check and the stats reader
(issue 10, item 4)."""

from __future__ import annotations

import pytest

from servers import haproxy_config, registry
from servers.haproxy_config import (
    SELECT_MAXCONN,
    HaproxyCounters,
    PollerMismatch,
    check_poller,
    maxconn_for,
    parse_counters,
    render_config,
    select_refusal_in,
)
from servers.limits import FD_SETSIZE, SetupError

NAMES = ("haproxy-select", "haproxy-poll", "haproxy-epoll")

# `show stat;show activity` as HAProxy 2.6 answers it (columns cut after those read).
STATS_ANSWER = """\
# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,hrsp_1xx,hrsp_2xx,\
hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,req_tot,conn_tot,h1_bytes_in,h1_bytes_out,
hello,FRONTEND,,,3,7,499,12,4000,9000,0,0,1,0,40,0,2,0,0,42,12,4410,9876,

thread_id: 0 (1..1)
date_now: 1700000000.000000
ctxsw: 100
loops: 5321
wake_tasks: 10

"""


def test_three_backends_declared_in_the_external_family() -> None:
    assert registry.names(registry.FAMILY_EXTERNAL) == NAMES
    for name, mechanism in zip(NAMES, ("select", "poll", "epoll"), strict=True):
        backend = registry.get(name)
        assert backend.mechanism == mechanism
        assert not backend.wait_instrumented
        assert backend.fd_number_limit == (FD_SETSIZE if mechanism == "select" else None)
    colours = [b.colour for b in registry.all_backends()]
    assert len(set(colours)) == len(colours)


def test_missing_binary_names_the_install_line(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(haproxy_config.HAPROXY_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(haproxy_config, "EXTRA_DIRS", ())
    for name in NAMES:
        reason = registry.get(name).unavailable_reason()
        assert reason is not None and "apt-get install haproxy" in reason, reason
        with pytest.raises(SetupError, match="apt-get install haproxy"):
            registry.get(name).load_factory()
    monkeypatch.setenv(haproxy_config.HAPROXY_ENV, str(tmp_path / "no-such-haproxy"))
    reason = registry.get("haproxy-epoll").unavailable_reason()
    assert reason is not None and "SELECTBENCH_HAPROXY" in reason and "apt-get install" in reason


def test_descriptor_budget_two_per_connection_and_select_capped() -> None:
    assert SELECT_MAXCONN == 499  # 25 reserved + 2 x 499 = 1023 <= FD_SETSIZE
    assert maxconn_for("select", 20000) == SELECT_MAXCONN
    assert maxconn_for("select", 125) == 50
    assert maxconn_for("epoll", 20000) == maxconn_for("poll", 20000) == 9987
    with pytest.raises(SetupError, match="leaves HAProxy no connection"):
        maxconn_for("epoll", 26)


@pytest.mark.parametrize("http_close", [False, True])
def test_config_one_thread_inherited_listener_hello(http_close: bool) -> None:
    text = render_config(
        bind="fd@7", backlog=4096, maxconn=499, stats_socket="/tmp/x/stats.sock",
        http_close=http_close,
    )  # fmt: skip
    assert "nbthread 1" in text and "maxconn 499" in text
    assert "bind fd@7 backlog 4096" in text
    assert "stats socket /tmp/x/stats.sock" in text
    assert 'http-request return status 200 content-type text/plain string "Hello, world!"' in text
    assert ("option httpclose" in text) is http_close
    assert ("option http-keep-alive" in text) is not http_close


def test_poller_line_must_name_the_mechanism_asked_for() -> None:
    line = "Using epoll() as the polling mechanism."
    assert check_poller("haproxy-epoll", "epoll", f"Total: 3\n{line}\n") == line.rstrip(".")
    with pytest.raises(PollerMismatch, match=r"asked HAProxy for select .*Using poll\(\)"):
        check_poller("haproxy-select", "select", "Using poll() as the polling mechanism.\n")
    with pytest.raises(PollerMismatch, match="printed no poller line"):
        check_poller("haproxy-poll", "poll", "[NOTICE] something else\n")


def test_select_refusal_quoted_in_one_line() -> None:
    alert = """[ALERT]    (1983) : No polling mechanism available.
  It is likely that haproxy was built with TARGET=generic and that FD_SETSIZE
  [...] For reference,
  FD_SETSIZE=1024 on this system, global.maxconn=500 resulting in a maximum of
  1025 file descriptors. You should thus reduce global.maxconn by 1. Also,
"""
    assert select_refusal_in(alert) == (
        "No polling mechanism available. For reference, FD_SETSIZE=1024 on this system, "
        "global.maxconn=500 resulting in a maximum of 1025 file descriptors."
    )
    assert select_refusal_in("Using select() as the polling mechanism.") is None


def test_counters_from_the_frontend_row_and_the_loop_count() -> None:
    assert parse_counters(STATS_ANSWER) == HaproxyCounters(
        accepted=12, current_connections=3, peak_connections=7, requests=42,
        bytes_in=4410, bytes_out=9876, errors=1, loops=5321,
    )  # fmt: skip
    with pytest.raises(ValueError, match="no 'show stat' table"):
        parse_counters("Unknown command\n")
    with pytest.raises(ValueError, match="no FRONTEND row"):
        parse_counters(STATS_ANSWER.replace("hello,FRONTEND", "other,FRONTEND"))
