"""Reference point without a readiness mechanism: one blocking thread per connection.

The kernel's scheduler does the waiting. Counters are shared by many threads,
so updates take the stats lock (only this server pays that price); there is
no wait call to time, so `wait_instrumented` is false.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading

from servers.config import ServerConfig
from servers.limits import OUT_OF_FDS_ERRNOS, RECV_BYTES, STOP_SIGNALS, release_stop_signals
from servers.protocol import http_consume
from servers.stats import ServerStats

# Small stacks: thousands of threads must fit in memory.
THREAD_STACK_BYTES = 256 * 1024


class _Stop(Exception):
    """Raised in the main thread by SIGTERM/SIGINT to leave accept()."""


class ThreadedServer:
    def __init__(self, config: ServerConfig, listener: socket.socket, stats: ServerStats) -> None:
        self.config = config
        self.listener = listener
        self.stats = stats
        self._conns: dict[int, socket.socket] = {}
        self._threads: set[threading.Thread] = set()
        self._guard = threading.Lock()

    def run(self) -> None:
        def stop(signum: int, frame: object) -> None:
            raise _Stop

        for sig in STOP_SIGNALS:
            signal.signal(sig, stop)
        threading.stack_size(THREAD_STACK_BYTES)
        self.listener.setblocking(True)
        try:
            release_stop_signals()  # inside the try: a pending SIGTERM raises _Stop here
            self._accept_forever()
        except _Stop:
            pass
        finally:
            self._shutdown()

    def _accept_forever(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError as exc:
                with self.stats._lock:
                    if exc.errno in OUT_OF_FDS_ERRNOS:  # back off, do not spin
                        self.stats.accept_emfile += 1
                    else:
                        self.stats.errors += 1
                threading.Event().wait(0.01)
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.stats._lock:
                self.stats.connection_opened()
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            with self._guard:
                self._conns[sock.fileno()] = sock
                self._threads.add(thread)
            # The thread starts with SIGTERM/SIGINT blocked (it inherits this mask), so the
            # kernel can only deliver them to the main thread. Delivered to a thread blocked
            # in recv, the handler would wait for the main thread, asleep in accept(), and
            # the server would not stop (a full suite run on 2026-12-06 timed out once so in
            # test_ready_line_only_and_clean_exit_on_signal[threads-SIGTERM]).
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            try:
                thread.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def _serve(self, sock: socket.socket) -> None:
        stats = self.stats
        lock = stats._lock
        config = self.config
        is_http = config.protocol == "http"
        inbuf = b""
        fd = sock.fileno()
        try:
            while True:
                data = sock.recv(RECV_BYTES)
                if not data:
                    break
                received = len(data)
                if is_http:
                    if inbuf:
                        data = inbuf + data
                    result = http_consume(data, config.max_head_bytes, config.http_close)
                    inbuf = result.rest
                    out, served, close = result.output, result.requests, result.close
                else:
                    out, served, close = data, 1, False
                with lock:
                    stats.bytes_in += received
                    stats.requests += served
                # sendall blocks while the client does not read: natural backpressure.
                if out:
                    sock.sendall(out)
                    with lock:
                        stats.bytes_out += len(out)
                if close:
                    break
        except OSError:
            with lock:
                stats.errors += 1
        finally:
            with self._guard:
                self._conns.pop(fd, None)
                self._threads.discard(threading.current_thread())
            sock.close()
            with lock:
                stats.connection_closed()

    def _shutdown(self) -> None:
        self.listener.close()
        with self._guard:
            socks = list(self._conns.values())
            threads = list(self._threads)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in recv/send
        for thread in threads:
            thread.join(timeout=2.0)
