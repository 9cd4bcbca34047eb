"""HAProxy behind `python -m servers`: the haproxy-select, haproxy-poll and haproxy-epoll backends.

The `python -m servers` process (servers.cli) does what it does for every
backend: pins itself to the server CPU, raises RLIMIT_NOFILE, opens the
listener, prints READY and answers the control channels. The factory here
writes a configuration (one thread, one frontend answering every request with
200 "Hello, world!" itself, keep-alive on, `--http-close` honoured) into a
private temporary directory (removed once haproxy serves) and starts haproxy
as a child process:

- It inherits the listening socket (`bind fd@N`), so READY's port is the one
  HAProxy serves and no other process can take it in between.
- It inherits the CPU affinity, so it runs on the server CPU.
- It dies with its parent (PR_SET_PDEATHSIG): no orphan, even when the wrapper
  is killed with SIGKILL.
- `-V` makes it name its poller ("Using poll() as the polling mechanism."); the
  factory compares that line with the backend's mechanism and refuses to start
  (SetupError, exit status 2) when they differ: a server that silently maps
  select to poll must not be measured as select.

The counters come from HAProxy's stats socket (`show stat`: the frontend's
connections, responses and bytes; `show activity`: its loop count), read at
every stats snapshot. HAProxy does not time its wait call (wait_instrumented
False, wait_* zero). The READY line carries `worker_pids` (haproxy's PID):
bench adds that process's CPU time to the wrapper's.

SIGTERM/SIGINT: SIGUSR1 to haproxy (soft stop: it closes idle connections at
once), SIGTERM after SOFT_STOP_S, SIGKILL after HARD_STOP_S more; haproxy is
reaped and the wrapper exits 0.

At select's limit: HAProxy reserves two descriptors per connection and its
select poller refuses to start when its descriptor total would exceed
FD_SETSIZE, so haproxy-select runs with maxconn 499
(servers.haproxy_config.SELECT_MAXCONN); at start-up it is asked for 500 on a
private socket, and its refusal ("No polling mechanism available. For
reference, FD_SETSIZE=1024 on this system, global.maxconn=500 resulting in a
maximum of 1025 file descriptors.") becomes select_probe_error. Past 499 it
stops accepting: the 500th and later clients complete the TCP handshake (the
kernel's listen backlog does that) and their requests get no answer until a
connection ends, when the next one is let in; nothing is refused or reset, and
the held connections are served normally. The fd-limit probe offered 1,040
connections (tiny preset) saw 499 answers and 541 timeouts. Once the backlog
is full the kernel drops further SYNs, as for any server that stops accepting.

It serves HTTP only (protocol "echo" is refused at start-up), and a request
head must fit its default buffer (tune.bufsize 16 KiB): a 20,000-byte head got
400, where our servers take up to max_head_bytes (64 KiB).
"""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

from lifeline import preexec_die_with_parent
from servers.config import ServerConfig
from servers.haproxy_config import (
    INSTALL_HINT,
    POLLER_FLAGS,
    SELECT_MAXCONN,
    STATS_COMMAND,
    check_poller,
    find_haproxy,
    maxconn_for,
    parse_counters,
    render_config,
    select_refusal_in,
)
from servers.limits import STOP_SIGNALS, SetupError, release_stop_signals
from servers.stats import ServerStats

START_TIMEOUT_S = 10.0
STATS_TIMEOUT_S = 2.0
# SIGUSR1 (soft stop) ends idle keep-alive connections and answered ones at once (18 ms
# for 5 of them, measured), but waits for connections that never sent a request: SIGTERM
# (HAProxy's immediate stop) follows after SOFT_STOP_S, SIGKILL after HARD_STOP_S more.
SOFT_STOP_S = 0.5
HARD_STOP_S = 1.5
SUN_PATH_BYTES = 108  # sizeof(struct sockaddr_un.sun_path) on Linux


class HaproxyError(SetupError):
    """HAProxy could not start, or ended on its own; the message carries its output."""


def query(socket_path: str, command: str, timeout_s: float = STATS_TIMEOUT_S) -> str:
    """One command (or several, ';'-separated) on HAProxy's stats socket (a path, or
    "\\0name" for abns@name); its whole answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(socket_path)
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _read_counters_from_haproxy(stats: ServerStats, socket_path: str, pid: int) -> None:
    """Make every `stats.snapshot()` first copy HAProxy's counters into `stats`.

    As in servers.c_server: the control channels hold `stats`, so its class gets a
    snapshot() that refreshes it. Its start_facts() add `worker_pids` for the READY
    line only (a snapshot leaves it out: StatsSnapshot has no such field). CPU is
    the wrapper's plus haproxy's, from /proc.
    """
    base = type(stats)
    ticks = os.sysconf("SC_CLK_TCK")

    def refresh(self: ServerStats) -> int | None:
        try:
            counters = parse_counters(query(socket_path, STATS_COMMAND))
        except (OSError, ValueError):
            return None  # haproxy is gone: the wrapper exits on that at once (run())
        self.accepted = counters.accepted
        self.current_connections = counters.current_connections
        self.closed = counters.accepted - counters.current_connections
        self.peak_connections = counters.peak_connections
        self.requests = counters.requests
        self.bytes_in = counters.bytes_in
        self.bytes_out = counters.bytes_out
        self.errors = counters.errors
        with contextlib.suppress(OSError):
            self.registered_fds = len(os.listdir(f"/proc/{pid}/fd"))
        return counters.loops

    def start_facts(self: ServerStats) -> dict[str, object]:
        return {**base.start_facts(self), "worker_pids": [pid]}

    def snapshot(self: ServerStats) -> dict[str, object]:
        with self._lock:  # the two control threads may ask at once
            loops = refresh(self)
            snap = base.snapshot(self)
        snap.pop("worker_pids")
        if loops is not None:
            snap["loop_iterations"] = loops
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            snap["cpu_user_s"] = float(snap["cpu_user_s"]) + int(fields[11]) / ticks  # type: ignore[arg-type]
            snap["cpu_system_s"] = float(snap["cpu_system_s"]) + int(fields[12]) / ticks  # type: ignore[arg-type]
        return snap

    stats.__class__ = type(
        "HaproxyServerStats",
        (base,),
        {"__slots__": (), "snapshot": snapshot, "start_facts": start_facts, "__doc__": None},
    )


def _spawn(
    argv: list[str], output: IO[bytes], pass_fds: tuple[int, ...] = ()
) -> subprocess.Popen[bytes]:
    """haproxy as a child that dies with this process, its output in `output`."""
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            pass_fds=pass_fds,
            # preexec_fn is safe here: servers.cli starts no thread before the factory.
            preexec_fn=preexec_die_with_parent(),
        )
    except OSError as exc:
        raise HaproxyError(f"cannot run {argv[0]}: {exc}; {INSTALL_HINT}") from exc


def _kill(proc: subprocess.Popen[bytes]) -> int:
    """SIGKILL (by PID) unless it has ended; reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
    return proc.wait()


class HaproxyServer:
    """One haproxy child on `mechanism`, started by the constructor, stopped by run()'s end."""

    def __init__(
        self, config: ServerConfig, listener: socket.socket, stats: ServerStats, mechanism: str
    ) -> None:
        if config.protocol != "http":
            raise SetupError(
                f"backend {config.backend!r} is HAProxy, which answers HTTP only: "
                "use --protocol http"
            )
        binary = find_haproxy()
        if binary is None:
            raise SetupError(f"backend {config.backend!r} needs haproxy: {INSTALL_HINT}")
        self.config = config
        self.listener = listener
        self.mechanism = mechanism
        # Files only while haproxy starts (it has read them once it serves): a wrapper
        # killed later leaves nothing behind. The stats socket is abstract (no file),
        # and read-only ("level user").
        self._dir = Path(tempfile.mkdtemp(prefix="selectbench-haproxy-"))  # mode 0700
        self.stats_name = f"selectbench-haproxy-{os.getpid()}-{secrets.token_hex(6)}"
        # HAProxy binds abns@ names padded with NULs to the whole sun_path (108 bytes).
        self.socket_path = "\0" + self.stats_name.ljust(SUN_PATH_BYTES - 1, "\0")
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.maxconn = maxconn_for(mechanism, nofile)
        self.config_path = self._dir / "haproxy.cfg"
        self.config_path.write_text(self._config(f"fd@{listener.fileno()}", self.maxconn))
        self._output: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 -- closed by _cleanup
        self.argv = [binary, "-f", str(self.config_path), "-db", "-V", *POLLER_FLAGS[mechanism]]
        try:
            if mechanism == "select":
                self._probe_select_limit(binary, stats)
            self.process = _spawn(self.argv, self._output, pass_fds=(listener.fileno(),))
        except BaseException:
            self._cleanup()
            raise
        try:
            self.poller_line = self._wait_serving()
            for line in self.output().splitlines():  # its complaints, for the trial's stderr
                if "[WARNING]" in line or "[ALERT]" in line:
                    print(f"haproxy: {line}", file=sys.stderr)
        except BaseException:
            self._kill()
            self._cleanup()
            raise
        shutil.rmtree(self._dir, ignore_errors=True)
        _read_counters_from_haproxy(stats, self.socket_path, self.process.pid)

    def output(self) -> str:
        """What haproxy wrote to stdout and stderr so far."""
        self._output.seek(0)
        return self._output.read().decode(errors="replace")

    def _wait_serving(self) -> str:
        """Wait for the poller line (checked) and a stats socket that answers."""
        deadline = time.monotonic() + START_TIMEOUT_S
        poller_line = None
        while time.monotonic() < deadline:
            status = self.process.poll()
            if poller_line is None:
                text = self.output()
                if status is not None or "as the polling mechanism" in text:
                    if status is not None and "as the polling mechanism" not in text:
                        raise HaproxyError(
                            f"haproxy exited with status {status} before serving "
                            f"({' '.join(self.argv)}): {text.strip()}"
                        )
                    poller_line = check_poller(self.config.backend, self.mechanism, text)
            if status is not None:
                raise HaproxyError(
                    f"haproxy exited with status {status} at start-up: {self.output().strip()}"
                )
            if poller_line is not None:
                with contextlib.suppress(OSError):
                    query(self.socket_path, "show info")
                    return poller_line
            time.sleep(0.01)
        raise HaproxyError(
            f"haproxy (pid {self.process.pid}) was not serving within {START_TIMEOUT_S:.0f} s: "
            f"{self.output().strip()}"
        )

    def _config(self, bind: str, maxconn: int, stats_socket: str | None = None) -> str:
        return render_config(
            bind=bind,
            backlog=self.config.backlog,
            maxconn=maxconn,
            stats_socket=stats_socket or f"abns@{self.stats_name}",
            http_close=self.config.http_close,
        )

    def _probe_select_limit(self, binary: str, stats: ServerStats) -> None:
        """Ask HAProxy itself where select stops: this configuration with one connection
        more (on a private socket, never a client's), which it must refuse. Its refusal
        goes where the Python select server puts CPython's (select_probe_error)."""
        if self.maxconn < SELECT_MAXCONN:
            stats.select_probe_status = (
                f"maxconn {self.maxconn}, set by RLIMIT_NOFILE below what select allows "
                f"({SELECT_MAXCONN}); not probed"
            )
            return
        probe = self._dir / "probe.cfg"
        probe.write_text(
            self._config(f"unix@{self._dir}/probe.sock", self.maxconn + 1,
                         stats_socket=f"abns@{self.stats_name}-probe")
        )  # fmt: skip
        with tempfile.TemporaryFile() as out:
            proc = _spawn([binary, "-f", str(probe), "-db", "-V", *POLLER_FLAGS["select"]], out)
            deadline = time.monotonic() + START_TIMEOUT_S
            while proc.poll() is None and time.monotonic() < deadline:
                out.seek(0)
                if b"as the polling mechanism" in out.read():
                    break  # it runs: no refusal to wait for
                time.sleep(0.005)
            _kill(proc)
            out.seek(0)
            text = out.read().decode(errors="replace")
        stats.select_probe_error = select_refusal_in(text)
        refused = "refused" if stats.select_probe_error else "did NOT refuse"
        stats.select_probe_status = (
            f"haproxy -de -dp {refused} maxconn {self.maxconn + 1} (2 descriptors per "
            f"connection must fit in FD_SETSIZE); runs with maxconn {self.maxconn}. Clients "
            "beyond it complete the handshake in the listen backlog and wait, unanswered, "
            "for a free slot"
        )

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT (then stop haproxy, exit 0) or until haproxy ends."""
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        in_main = threading.current_thread() is threading.main_thread()
        pidfd = os.pidfd_open(self.process.pid)
        try:
            if in_main:
                for sig in STOP_SIGNALS:
                    signal.signal(sig, lambda signum, frame: None)  # the wake-up byte is enough
                signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
                release_stop_signals()
            # haproxy holds the listener now; ours would keep the port open after it ends.
            self.listener.close()
            watch = select.poll()
            watch.register(wake_r, select.POLLIN)
            watch.register(pidfd, select.POLLIN)
            while True:
                ready = {fd for fd, _ in watch.poll()}
                if pidfd in ready:
                    status = self.process.wait()
                    raise HaproxyError(
                        f"haproxy (pid {self.process.pid}) ended on its own with status "
                        f"{status}: {self.output().strip()[-1500:]}"
                    )
                with contextlib.suppress(BlockingIOError):
                    if set(os.read(wake_r, 64)) & {int(s) for s in STOP_SIGNALS}:
                        break
            self.stop()
        finally:
            if in_main:
                signal.set_wakeup_fd(-1)
            for fd in (wake_r, wake_w, pidfd):
                os.close(fd)
            self._kill()
            self._cleanup()

    def stop(self) -> int:
        """Soft stop (SIGUSR1), then SIGTERM, then SIGKILL, each after a timeout; reap it."""
        for sig, wait_s in ((signal.SIGUSR1, SOFT_STOP_S), (signal.SIGTERM, HARD_STOP_S)):
            if self.process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=wait_s)
        if self.process.poll() is None:
            print(
                f"servers: haproxy (pid {self.process.pid}) outlived SIGUSR1 and SIGTERM "
                f"({SOFT_STOP_S + HARD_STOP_S:.1f} s): killed",
                file=sys.stderr,
            )
        return self._kill()

    def _kill(self) -> int:
        return _kill(self.process)

    def _cleanup(self) -> None:
        with contextlib.suppress(OSError):
            self._output.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def make_haproxy_select(
    config: ServerConfig, listener: socket.socket, stats: ServerStats
) -> HaproxyServer:
    return HaproxyServer(config, listener, stats, "select")


def make_haproxy_poll(
    config: ServerConfig, listener: socket.socket, stats: ServerStats
) -> HaproxyServer:
    return HaproxyServer(config, listener, stats, "poll")


def make_haproxy_epoll(
    config: ServerConfig, listener: socket.socket, stats: ServerStats
) -> HaproxyServer:
    return HaproxyServer(config, listener, stats, "epoll")
