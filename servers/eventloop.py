"""The connection handling shared by the select, poll and epoll servers.

One loop, written once: accept, read, answer through `servers.protocol`,
queue what the socket buffer will not take, watch for writability, close.
The backend (`servers.backends`) only says which descriptors are ready.

Design points, each a lesson from the seed blog's servers:
- per-connection output queues with write interest only while bytes are
  queued (the seed's select + Queue server, without its unbounded queues);
- a cap on queued bytes per connection: above it the server stops reading
  from that client until the queue drains (backpressure);
- EMFILE/ENFILE on accept: the reserve-descriptor trick (close a spare fd,
  accept, close, reopen) so a level-triggered listener does not stay
  readable forever and spin the loop at 100% CPU;
- select's FD_SETSIZE: a connection numbered >= 1024 is closed right after
  accept and counted in `rejected_fd_setsize`. The client's connect() has
  already succeeded (the kernel completed the handshake); it then reads EOF,
  or gets ECONNRESET if it had sent data the server never read.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import time

from servers.backends import ERROR, READ, WRITE, Backend
from servers.config import ServerConfig
from servers.limits import OUT_OF_FDS_ERRNOS, RECV_BYTES, STOP_SIGNALS, release_stop_signals
from servers.protocol import http_consume
from servers.sampling import start_sampling
from servers.stats import ServerStats

_ACCEPT_AGAIN = (errno.ECONNABORTED, errno.EPROTO, errno.EINTR)


class Connection:
    """State of one client. Buffers exist only while they hold bytes."""

    __slots__ = ("closing", "fd", "inbuf", "mask", "out", "paused", "sock")

    def __init__(self, sock: socket.socket, fd: int, mask: int) -> None:
        self.sock = sock
        self.fd = fd
        self.mask = mask
        self.out: bytearray | None = None
        self.inbuf: bytes | None = None
        self.paused = False
        self.closing = False


class EventLoopServer:
    """Serves echo or http on `listener` using one readiness backend."""

    def __init__(
        self, config: ServerConfig, backend: Backend, listener: socket.socket, stats: ServerStats
    ) -> None:
        self.config = config
        self.backend = backend
        self.listener = listener
        self.stats = stats
        self.conns: dict[int, Connection] = {}
        self.stopping = False
        self._et = backend.edge_triggered
        self._fd_limit = backend.fd_limit
        self._cap = config.max_queued_bytes
        self._resume_below = config.max_queued_bytes // 2
        self._is_http = config.protocol == "http"
        self._reserve_fd: int | None = os.open(os.devnull, os.O_RDONLY)
        self._accept_paused = False
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._sampler = start_sampling(config, stats) if config.instrumentation else None

    # -- lifecycle -------------------------------------------------------
    def _on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True  # the wakeup fd makes the wait call return

    def run(self) -> None:
        """Loop until SIGTERM or SIGINT, then close every socket."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        release_stop_signals()
        self.listener.setblocking(False)
        self.backend.register(self.listener.fileno(), READ)
        self.backend.register(self._wake_r, READ)
        self.stats.registered_fds = 2
        try:
            if self.config.instrumentation:
                self._loop_instrumented()
            else:
                self._loop_plain()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        signal.set_wakeup_fd(-1)
        self._accept_paused = False  # closing connections below must not re-arm accept
        for conn in list(self.conns.values()):
            self._close(conn)
        self.backend.close()
        self.listener.close()
        for fd in (self._wake_r, self._wake_w, self._reserve_fd):
            if fd is not None:
                os.close(fd)

    # -- the loop ----------------------------------------------------------
    def _loop_instrumented(self) -> None:
        wait = self.backend.wait
        dispatch = self._dispatch
        stats = self.stats
        clock = time.perf_counter_ns
        # Wall time inside a blocking wait is mostly sleep; the thread's CPU time
        # inside it is what the kernel spends on the call -- the cost the claims
        # are about. The CPU clock is read on a random 1 call in 8 (servers.sampling
        # says why random and how its own cost is calibrated and subtracted).
        cpu_clock = time.thread_time_ns
        assert self._sampler is not None
        next_gap = self._sampler.next_gap
        countdown = next_gap()
        while not self.stopping:
            countdown -= 1
            if countdown:
                t0 = clock()
                events = wait(None)
                t1 = clock()
            else:
                c0 = cpu_clock()
                t0 = clock()
                events = wait(None)
                t1 = clock()
                stats.wait_cpu_ns += cpu_clock() - c0
                stats.wait_cpu_samples += 1
                stats.wait_cpu_sample_events += len(events)
                countdown = next_gap()
            stats.wait_ns += t1 - t0
            stats.wait_calls += 1
            stats.wait_events += len(events)
            dispatch(events)

    def _loop_plain(self) -> None:
        # Same loop without timing: used only to measure the instrumentation's cost.
        wait = self.backend.wait
        dispatch = self._dispatch
        while not self.stopping:
            dispatch(wait(None))

    def _dispatch(self, events: list[tuple[int, int]]) -> None:
        conns = self.conns
        listen_fd = self.listener.fileno()
        for fd, mask in events:
            conn = conns.get(fd)
            if conn is None:
                if fd == listen_fd:
                    self._accept()
                elif fd == self._wake_r:
                    self._drain_wakeup()
                continue  # a descriptor closed earlier in this batch
            if mask & ERROR and (conn.closing or conn.paused):
                # Hang-up or error while we only wanted to write: nobody can read it.
                self._close(conn)
                continue
            if mask & (READ | ERROR) and not conn.closing and not conn.paused:
                self._read(conn)
            if mask & WRITE and conn.out is not None and conn.fd in conns:
                self._flush(conn)

    def _drain_wakeup(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    # -- accepting -----------------------------------------------------------
    def _accept(self) -> None:
        stats = self.stats
        backend = self.backend
        mask = READ
        while True:  # until EAGAIN: required for edge-triggered, fair for all
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in OUT_OF_FDS_ERRNOS:
                    stats.accept_emfile += 1
                    if not self._shed_one_pending():
                        # No spare descriptor to shed with: stop watching the
                        # listener until a connection closes and frees one.
                        self._pause_accepting()
                        return
                    continue
                if exc.errno in _ACCEPT_AGAIN:
                    continue
                stats.errors += 1
                return
            fd = sock.fileno()
            if self._fd_limit is not None and fd >= self._fd_limit:
                stats.rejected_fd_setsize += 1
                sock.close()
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conns[fd] = Connection(sock, fd, mask)
            backend.register(fd, mask)
            stats.registered_fds += 1
            stats.connection_opened()

    def _pause_accepting(self) -> None:
        if not self._accept_paused:
            self._accept_paused = True
            self.backend.modify(self.listener.fileno(), 0)

    def _resume_accepting(self) -> None:
        self._accept_paused = False
        self.backend.modify(self.listener.fileno(), READ)
        if self.backend.edge_triggered:
            self._accept()  # connections queued meanwhile raise no new edge

    def _shed_one_pending(self) -> bool:
        """Out of descriptors: accept one pending connection and close it at once.

        Without this a level-triggered listener stays readable and the loop
        spins. Returns False when nothing could be shed (then the loop retries
        on the next readiness report).
        """
        if self._reserve_fd is None:
            try:
                self._reserve_fd = os.open(os.devnull, os.O_RDONLY)
            except OSError:
                return False
        os.close(self._reserve_fd)
        self._reserve_fd = None
        try:
            sock, _ = self.listener.accept()
            sock.close()
            shed = True
        except OSError:
            shed = False
        try:
            self._reserve_fd = os.open(os.devnull, os.O_RDONLY)
        except OSError:
            self._reserve_fd = None
        return shed

    # -- reading -----------------------------------------------------------
    def _read(self, conn: Connection) -> None:
        recv = conn.sock.recv
        stats = self.stats
        while True:
            try:
                data = recv(RECV_BYTES)
            except BlockingIOError:
                return
            except OSError:
                stats.errors += 1
                self._close(conn)
                return
            if not data:  # the client closed its side (EOF or half-close)
                conn.closing = True
                if conn.out is None:
                    self._close(conn)
                else:
                    self._update_interest(conn)
                return
            stats.bytes_in += len(data)
            if self._is_http:
                if conn.inbuf is not None:
                    data = conn.inbuf + data
                    conn.inbuf = None
                result = http_consume(data, self.config.max_head_bytes, self.config.http_close)
                if result.rest:
                    conn.inbuf = result.rest
                stats.requests += result.requests
                if result.close:
                    conn.closing = True
                if result.output:
                    self._send(conn, result.output)
                elif conn.closing:
                    self._close(conn)
            else:
                stats.requests += 1
                self._send(conn, data)
            if not self._et or conn.closing or conn.paused or conn.fd not in self.conns:
                return

    # -- writing -----------------------------------------------------------
    def _send(self, conn: Connection, data: bytes) -> None:
        if conn.out is not None:
            conn.out += data
        else:
            try:
                sent = conn.sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                self.stats.errors += 1
                self._close(conn)
                return
            self.stats.bytes_out += sent
            if sent == len(data):
                if conn.closing:
                    self._close(conn)
                return
            conn.out = bytearray(memoryview(data)[sent:])
        if len(conn.out) >= self._cap and not conn.paused:
            conn.paused = True
            self.stats.paused_reads += 1
        self._update_interest(conn)

    def _flush(self, conn: Connection) -> None:
        out = conn.out
        assert out is not None
        send = conn.sock.send
        while out:
            try:
                sent = send(out)
            except BlockingIOError:
                break
            except OSError:
                self.stats.errors += 1
                self._close(conn)
                return
            self.stats.bytes_out += sent
            del out[:sent]
            if not self._et:
                break  # level-triggered: the next wait reports writability again
        if not out:
            conn.out = None
            if conn.closing:
                self._close(conn)
                return
        resume = conn.paused and (conn.out is None or len(conn.out) < self._resume_below)
        if resume:
            conn.paused = False
        self._update_interest(conn)
        if resume and self._et:
            # Edge-triggered: bytes that arrived while paused raised no new
            # edge, so read them now.
            self._read(conn)

    def _update_interest(self, conn: Connection) -> None:
        if self._et:
            return
        mask = 0 if conn.paused or conn.closing else READ
        if conn.out is not None:
            mask |= WRITE
        if mask != conn.mask:
            self.backend.modify(conn.fd, mask)
            conn.mask = mask

    def _close(self, conn: Connection) -> None:
        if self.conns.pop(conn.fd, None) is None:
            return
        self.backend.unregister(conn.fd)
        self.stats.registered_fds -= 1
        conn.sock.close()
        conn.out = None
        conn.inbuf = None
        self.stats.connection_closed()
        if self._accept_paused:
            self._resume_accepting()
