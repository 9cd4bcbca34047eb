"""Process lifecycle of `python -m servers`: the READY line is the only stdout output,
SIGTERM/SIGINT end it with status 0, bad arguments fail with a clear message, and the
launcher leaves no process behind (issue 2, docs/architecture.md)."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from test_servers_support import (
    HttpClient,
    assert_echo,
    assert_hello,
    backend_params,
    close_all,
    connect,
    http_request,
    open_many,
    wait_for_stats,
)

from servers import registry

REPO_ROOT = Path(__file__).resolve().parents[1]
READY_KEYS = {"port", "control_port", "pid", "backend", "protocol", "host", "fd_limit"}
START_TIMEOUT_S = 30.0


def _popen_server(*args: str, pre: str | None = None) -> subprocess.Popen[str]:
    """`python -m servers ARGS`, or, with pre, the same after running pre (to simulate a
    machine without uvloop)."""
    if pre is None:
        cmd = [sys.executable, "-m", "servers", *args]
    else:
        code = f"{pre}; import runpy; runpy.run_module('servers', run_name='__main__')"
        cmd = [sys.executable, "-c", code, *args]
    return subprocess.Popen(
        cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _read_ready(proc: subprocess.Popen[str]) -> dict:
    """The READY line, or a failure carrying the server's stderr."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(START_TIMEOUT_S):
            proc.kill()
            _out, err = proc.communicate(timeout=10)
            pytest.fail(f"no READY line within {START_TIMEOUT_S} s; stderr: {err}")
    line = proc.stdout.readline()
    if not line:
        _out, err = proc.communicate(timeout=10)
        pytest.fail(f"server exited {proc.returncode} before READY; stderr: {err}")
    word, _, payload = line.partition(" ")
    assert word == "READY", f"first stdout line is not READY: {line!r}"
    return json.loads(payload)


def _run_to_exit(*args: str, pre: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = _popen_server(*args, pre=pre)
    try:
        out, err = proc.communicate(timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
        pytest.fail(f"`python -m servers {' '.join(args)}` did not exit; expected a refusal")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("backend", backend_params())
def test_ready_line_only_and_clean_exit_on_signal(backend: str, sig: signal.Signals) -> None:
    if backend == "uvloop":
        pytest.importorskip("uvloop", reason="uvloop is not installed: pip install uvloop")
    protocol = "http" if sig == signal.SIGTERM else "echo"
    if protocol not in registry.get(backend).protocols:
        protocol = "http"
    reason = registry.get(backend).unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    proc = _popen_server("--backend", backend, "--protocol", protocol, "--port", "0")
    try:
        ready = _read_ready(proc)
        assert set(ready) >= READY_KEYS, f"READY lacks {READY_KEYS - set(ready)}: {ready}"
        assert ready["pid"] == proc.pid
        assert (ready["backend"], ready["protocol"]) == (backend, protocol)
        assert ready["host"] == "127.0.0.1"
        assert ready["fd_limit"] == resource.getrlimit(resource.RLIMIT_NOFILE)[1], (
            "the server should raise its soft RLIMIT_NOFILE to the hard limit"
        )
        # Traffic, and a connection still open when the signal arrives.
        idle = connect(ready["port"])
        if protocol == "http":
            with HttpClient(ready["port"]) as client:
                client.send(http_request())
                assert_hello(client.read_response())
        else:
            with connect(ready["port"]) as sock:
                assert_echo(sock, b"x" * 100_000)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, f"exit status {proc.returncode} after {sig.name}; stderr: {err}"
    assert out == "", f"stdout after READY must be empty, got {out!r}"
    assert "Traceback" not in err, err
    # The held connection was closed by the server, and the port is released.
    idle.settimeout(10)
    with contextlib.suppress(ConnectionResetError):
        assert idle.recv(1) == b""
    idle.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", ready["port"]), timeout=5).close()


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3"])
def test_non_loopback_host_refused_without_allow_remote(host: str) -> None:
    result = _run_to_exit("--backend", "epoll", "--protocol", "http", "--host", host)
    assert result.returncode != 0
    assert "READY" not in result.stdout
    assert "--allow-remote" in result.stderr, f"refusal should name the remedy: {result.stderr!r}"
    assert "Traceback" not in result.stderr, result.stderr


def test_other_loopback_address_is_allowed() -> None:
    """All of 127.0.0.0/8 is loopback; only non-loopback addresses need --allow-remote."""
    proc = _popen_server("--backend", "poll", "--protocol", "echo", "--host", "127.0.0.2")
    try:
        ready = _read_ready(proc)
        with socket.create_connection(("127.0.0.2", ready["port"]), timeout=10) as sock:
            assert_echo(sock, b"loopback")
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--backend", "kqueue", "--protocol", "http"), "kqueue"),
        (("--backend", "epoll", "--protocol", "gopher"), "gopher"),
    ],
    ids=["unknown-backend", "unknown-protocol"],
)
def test_unknown_backend_or_protocol_is_a_clear_error(args: tuple[str, ...], named: str) -> None:
    result = _run_to_exit(*args)
    assert result.returncode != 0
    assert "READY" not in result.stdout
    assert named in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_unknown_backend_in_python_api() -> None:
    from servers.launch import ServerConfig

    with pytest.raises(ValueError, match="kqueue"):
        ServerConfig(backend="kqueue")


def test_uvloop_missing_is_a_clear_error() -> None:
    """Simulated: importing uvloop fails as on a machine without it."""
    result = _run_to_exit(
        "--backend", "uvloop", "--protocol", "http", pre="import sys; sys.modules['uvloop'] = None"
    )
    assert result.returncode != 0
    assert "uvloop" in result.stderr and "install" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("backend", backend_params(["epoll", "threads"]))
def test_launcher_context_manager_reaps_the_server(backend: str) -> None:
    from servers.launch import ServerConfig, start_server

    with start_server(ServerConfig(backend=backend, protocol="http", cpu=0)) as srv:
        assert srv.is_alive()
        assert srv.ready_info["port"] == srv.port
        assert psutil.Process(srv.pid).cpu_affinity() == [0], "--cpu 0 should pin the server"
        with HttpClient(srv.port) as client:
            client.send(http_request())
            assert_hello(client.read_response())
        pid = srv.pid
    assert not srv.is_alive()
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        # A reaped child disappears; a zombie would mean the launcher forgot to wait().
        try:
            zombie = psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            break
        assert not zombie, "launcher left a zombie: it must wait() for the server"
        time.sleep(0.05)
    assert not psutil.pid_exists(pid)


@pytest.mark.parametrize("backend", backend_params())
def test_sigterm_with_busy_and_idle_connections_exits_0(start_server, backend: str) -> None:
    """Shutdown must not wait for clients: 200 idle connections (threads blocked in recv for
    the threaded server) and 10 clients with unread pipelined answers, then SIGTERM."""
    srv = start_server(backend, "http")
    idle = open_many(srv.port, 200)
    busy = []
    try:
        for _ in range(10):
            sock = connect(srv.port)
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.send(http_request() * 500)
            busy.append(sock)
        wait_for_stats(srv, lambda s: s.current_connections == 210, what="210 connections")
        exit_code = srv.stop(timeout_s=20.0)
    finally:
        close_all(idle + busy)
    assert exit_code == 0, f"exit status {exit_code} (negative: killed by that signal)"


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run_to_exit("--backend", "epoll", "--protocol", "http", "--port", str(port))
    assert result.returncode != 0
    assert "READY" not in result.stdout
    assert str(port) in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_cpu_not_available_is_a_clear_error() -> None:
    missing_cpu = max(os.sched_getaffinity(0)) + 1
    result = _run_to_exit("--backend", "poll", "--protocol", "echo", "--cpu", str(missing_cpu))
    assert result.returncode != 0
    assert "--cpu" in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_no_control_channel_still_serves_and_exits_0() -> None:
    proc = _popen_server("--backend", "epoll", "--protocol", "echo", "--no-control")
    try:
        ready = _read_ready(proc)
        assert not ready.get("control_port"), ready
        with connect(ready["port"]) as sock:
            assert_echo(sock, b"no control channel")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out == ""


def test_only_the_threaded_servers_main_thread_takes_sigterm(start_server) -> None:
    """Every thread but the main one blocks SIGTERM and SIGINT, so the kernel delivers them
    to the main thread (asleep in accept()) and never to a thread asleep in recv, whose
    handler would wait for the main thread to wake."""
    srv = start_server("threads", "http")
    idle = open_many(srv.port, 5)
    try:
        wait_for_stats(srv, lambda s: s.current_connections == 5, what="5 connections")
        tasks = Path(f"/proc/{srv.pid}/task")
        blocked = {}
        for task in tasks.iterdir():
            status = (task / "status").read_text()
            sigblk = next(line for line in status.splitlines() if line.startswith("SigBlk:"))
            blocked[int(task.name)] = int(sigblk.split()[1], 16)
        stop_bits = (1 << (signal.SIGTERM - 1)) | (1 << (signal.SIGINT - 1))
        others = {tid: mask for tid, mask in blocked.items() if tid != srv.pid}
        assert len(others) >= 5, f"expected a thread per connection, found {len(others)}"
        assert all(mask & stop_bits == stop_bits for mask in others.values()), blocked
        assert blocked[srv.pid] & stop_bits == 0, "the main thread must take the signal"
    finally:
        close_all(idle)
