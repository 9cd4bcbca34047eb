"""HAProxy behind `python -m servers` (issue 10, item 4): READY, keep-alive, pipelining,
--http-close, counters from its stats socket, the poller it really runs, pinning, no orphan
after SIGTERM or SIGKILL, and what a client sees past haproxy-select's maxconn."""

from __future__ import annotations

import os
import select
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from test_servers_support import (
    HttpClient,
    assert_hello,
    close_all,
    connect,
    http_request,
    open_many,
    wait_for_stats,
    wait_idle,
)

from servers.haproxy_config import HAPROXY_ENV, INSTALL_HINT, SELECT_MAXCONN, find_haproxy
from servers.launch import ServerStartError, child_process_env

HAPROXY = find_haproxy()
pytestmark = pytest.mark.skipif(HAPROXY is None, reason=f"haproxy is not installed: {INSTALL_HINT}")

BACKENDS = ("haproxy-select", "haproxy-poll", "haproxy-epoll")
MECHANISM = {"haproxy-select": "select", "haproxy-poll": "poll", "haproxy-epoll": "epoll"}


def _haproxy(srv) -> psutil.Process:
    """The haproxy child named in READY's worker_pids."""
    (pid,) = srv.ready_info["worker_pids"]
    proc = psutil.Process(pid)
    assert proc.ppid() == srv.pid and Path(proc.exe()).name == "haproxy", proc
    return proc


def _has_epoll_instance(pid: int) -> bool:
    """Whether the process holds an epoll descriptor: the kernel's word, not haproxy's."""
    fd_dir = Path(f"/proc/{pid}/fd")
    return any(os.readlink(fd_dir / fd) == "anon_inode:[eventpoll]" for fd in os.listdir(fd_dir))


def _gone(pid: int, reaped: bool = True, timeout_s: float = 10.0) -> bool:
    """Whether the process ended within the timeout; `reaped`: and its parent reaped it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            zombie = psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            if zombie and not reaped:
                return True  # dead; an orphan is reaped by init, in its own time
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("backend", BACKENDS)
def test_serves_hello_keep_alive_and_pipelined_and_counts_it(start_server, backend: str) -> None:
    srv = start_server(backend, "http")
    haproxy = _haproxy(srv)
    assert srv.ready_info["backend"] == backend and srv.ready_info["wait_instrumented"] is False
    # The poller asked for is the one running: epoll leaves an epoll instance, the others none.
    assert _has_epoll_instance(haproxy.pid) is (MECHANISM[backend] == "epoll")
    before = wait_idle(srv)
    with HttpClient(srv.port) as keep_alive, HttpClient(srv.port) as pipelined:
        for _ in range(5):
            keep_alive.send(http_request())
            resp = keep_alive.read_response()
            assert_hello(resp)
            assert resp.headers.get("connection", "keep-alive").lower() != "close", resp.raw
        pipelined.send(http_request() * 10)
        for _ in range(10):
            assert_hello(pipelined.read_response())
        during = wait_for_stats(srv, lambda s: s.current_connections == 2, what="2 connections")
        assert before.delta(during).requests == 15
    window = before.delta(wait_idle(srv))
    assert (window.accepted, window.closed, window.requests) == (2, 2, 15), window
    assert window.peak_connections >= 2
    assert window.bytes_in == 15 * len(http_request()), window
    assert window.bytes_out > 15 * len(b"Hello, world!"), window
    assert window.wait_calls == window.wait_ns == window.wait_events == 0
    assert window.loop_iterations > 0  # HAProxy's own loop count (show activity)
    haproxy_cpu = haproxy.cpu_times()
    later = srv.stats()  # CPU: the wrapper's plus haproxy's (in 10 ms ticks)
    assert later.cpu_user_s >= haproxy_cpu.user and later.cpu_system_s >= haproxy_cpu.system
    assert window.pid == srv.pid
    if backend == "haproxy-select":  # HAProxy's own refusal of one connection more
        assert f"runs with maxconn {SELECT_MAXCONN}" in (window.select_probe_status or "")
        assert window.select_probe_error == (
            "No polling mechanism available. For reference, FD_SETSIZE=1024 on this system, "
            f"global.maxconn={SELECT_MAXCONN + 1} resulting in a maximum of 1025 file descriptors."
        )
    else:
        assert window.select_probe_error is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_http_close_closes_after_every_response(start_server, backend: str) -> None:
    srv = start_server(backend, "http", http_close=True)
    for _ in range(3):
        with HttpClient(srv.port) as client:
            client.send(http_request(headers=[("Connection", "keep-alive")]))
            resp = client.read_response()
            assert_hello(resp)
            assert resp.headers.get("connection", "").lower() == "close", resp.raw
            assert client.peer_closed(), "--http-close: haproxy kept the connection open"
    assert wait_idle(srv).requests == 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_poller_other_than_the_one_asked_for_fails_the_start(
    start_server, backend: str, tmp_path: Path, monkeypatch
) -> None:
    """A haproxy that says it uses another poller (here a fake -V line printed first) must
    not be measured under this backend's name."""
    wrong = {"select": "poll", "poll": "epoll", "epoll": "select"}[MECHANISM[backend]]
    fake = tmp_path / "haproxy"
    fake.write_text(
        f'#!/bin/sh\necho "Using {wrong}() as the polling mechanism."\nexec {HAPROXY} "$@"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv(HAPROXY_ENV, str(fake))
    with pytest.raises(ServerStartError) as failed:
        start_server(backend, "http")
    message = str(failed.value)
    assert f"asked HAProxy for {MECHANISM[backend]}" in message, message
    assert f"Using {wrong}()" in message, message


def test_epoll_disabled_behind_the_backends_back_is_caught(tmp_path: Path) -> None:
    """A real wrong mapping: the binary adds -de, so haproxy-epoll would silently run poll.
    The server exits 2 with the reason, and leaves no haproxy behind."""
    fake = tmp_path / "haproxy"
    fake.write_text(f'#!/bin/sh\nexec {HAPROXY} -de "$@"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    started = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "servers", "--backend", "haproxy-epoll"],
        env={**child_process_env(), HAPROXY_ENV: str(fake)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and proc.stdout == "", proc
    assert "asked HAProxy for epoll" in proc.stderr and "Using poll()" in proc.stderr, proc.stderr
    assert not [
        p.pid
        for p in psutil.process_iter(["name", "create_time"])
        if p.info["name"] == "haproxy"
        and p.info["create_time"] >= started - 1
        and p.status() != psutil.STATUS_ZOMBIE
    ]


def test_echo_is_refused_with_the_reason(start_server) -> None:
    with pytest.raises(ServerStartError, match="answers HTTP only"):
        start_server("haproxy-epoll", "echo")


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigterm_stops_haproxy_and_exits_0(start_server, backend: str) -> None:
    srv = start_server(backend, "http")
    haproxy = _haproxy(srv)
    idle = open_many(srv.port, 20)
    busy = connect(srv.port)
    try:
        busy.sendall(http_request())
        wait_for_stats(srv, lambda s: s.current_connections == 21, what="21 connections")
        assert srv.stop(timeout_s=20.0) == 0, srv.exit_reason()
    finally:
        close_all([*idle, busy])
    assert _gone(haproxy.pid), f"haproxy (pid {haproxy.pid}) outlived its wrapper's SIGTERM"


def test_wrapper_killed_takes_haproxy_with_it(start_server) -> None:
    """Nothing survives a SIGKILLed wrapper: not haproxy, not its start-up files."""
    leftovers = set(Path(tempfile.gettempdir()).glob("selectbench-haproxy-*"))
    srv = start_server("haproxy-epoll", "http")
    haproxy = _haproxy(srv)
    os.kill(srv.pid, signal.SIGKILL)
    assert _gone(haproxy.pid, reaped=False), "haproxy outlived its SIGKILLed wrapper"
    assert set(Path(tempfile.gettempdir()).glob("selectbench-haproxy-*")) == leftovers
    assert srv.stop() == -signal.SIGKILL


def test_haproxy_runs_one_thread_on_the_server_cpu(start_server) -> None:
    cpu = max(os.sched_getaffinity(0))
    srv = start_server("haproxy-epoll", "http", cpu=cpu)
    haproxy = _haproxy(srv)
    assert haproxy.cpu_affinity() == [cpu]
    assert psutil.Process(srv.pid).cpu_affinity() == [cpu]
    assert haproxy.num_threads() == 1


@pytest.mark.slow  # waits out unaccepted clients
def test_select_past_maxconn_clients_wait_unaccepted(start_server) -> None:
    """What the fd-limit scenario shows for haproxy-select: it holds SELECT_MAXCONN clients;
    the next ones connect (the kernel's backlog) but get no answer, nothing is refused or
    reset; each connection that ends lets one waiting client in."""
    srv = start_server("haproxy-select", "http")
    extra = 12
    socks = open_many(srv.port, SELECT_MAXCONN + extra)
    try:
        for sock in socks:
            sock.sendall(http_request())
        held = wait_for_stats(
            srv, lambda s: s.requests >= SELECT_MAXCONN, what=f"{SELECT_MAXCONN} answers"
        )
        # window: room for a wrongly accepted client to be answered (an absence has no event)
        time.sleep(1.0)
        stats = srv.stats()
        assert stats.current_connections == stats.accepted == SELECT_MAXCONN, stats
        assert stats.requests == held.requests == SELECT_MAXCONN, stats
        waiting = [s for s in socks if not _readable(s)]
        assert len(waiting) == extra, f"{len(waiting)} clients unanswered, expected {extra}"
        for sock in waiting:  # still connected: no EOF, no reset
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)
        answered = [s for s in socks if s not in waiting]
        close_all(answered[:extra])
        wait_for_stats(
            srv, lambda s: s.requests == SELECT_MAXCONN + extra, what="the waiting ones served"
        )
    finally:
        close_all(socks)


def _readable(sock: socket.socket) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))
