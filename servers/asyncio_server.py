"""Reference points built differently: asyncio's own loop (Protocol API) and uvloop.

The protocol bytes come from `servers.protocol`, the same as the hand-written
loops. For asyncio, the selector is wrapped so that the time inside
`select()` is measured like the other backends' wait calls (the wrapper also
counts the selector's own Python work of building its ready list). uvloop
waits inside libuv, out of Python's reach: its wait_* counters stay 0 and
`wait_instrumented` is false.
"""

from __future__ import annotations

import asyncio
import selectors
import socket
import time
from collections.abc import Callable

from servers.config import ServerConfig
from servers.limits import STOP_SIGNALS, release_stop_signals
from servers.protocol import http_consume
from servers.sampling import CallSampler, start_sampling
from servers.stats import ServerStats


class TimedEpollSelector(selectors.EpollSelector):
    """EpollSelector whose select() adds to the server's wait counters, sampled as the
    event loop's are (servers.sampling)."""

    def __init__(self, stats: ServerStats, sampler: CallSampler) -> None:
        super().__init__()
        self._stats = stats
        self._next_gap = sampler.next_gap
        self._countdown = sampler.next_gap()

    def select(self, timeout: float | None = None) -> list:
        stats = self._stats
        self._countdown -= 1
        sampled = not self._countdown
        c0 = time.thread_time_ns() if sampled else 0
        t0 = time.perf_counter_ns()
        ready = super().select(timeout)
        t1 = time.perf_counter_ns()
        if sampled:
            stats.wait_cpu_ns += time.thread_time_ns() - c0
            stats.wait_cpu_samples += 1
            stats.wait_cpu_sample_events += len(ready)
            self._countdown = self._next_gap()
        stats.wait_ns += t1 - t0
        stats.wait_calls += 1
        stats.wait_events += len(ready)
        return ready


class _ServerProtocol(asyncio.Protocol):
    """Shared connection bookkeeping and backpressure for echo and http."""

    def __init__(self, server: AsyncioServer) -> None:
        self.server = server
        self.stats = server.stats
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only duck-typed.
        self.transport = transport  # type: ignore[assignment]
        # Above `high` buffered bytes asyncio calls pause_writing(): stop reading then.
        transport.set_write_buffer_limits(high=self.server.config.max_queued_bytes)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stats.connection_opened()
        self.server.transports.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self.stats.errors += 1
        self.stats.connection_closed()
        if self.transport is not None:
            self.server.transports.discard(self.transport)

    def pause_writing(self) -> None:
        assert self.transport is not None
        self.stats.paused_reads += 1
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        assert self.transport is not None
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def eof_received(self) -> bool:
        return False  # close once queued output is flushed (half-closed clients get their data)

    def _write(self, data: bytes) -> None:
        assert self.transport is not None
        self.stats.bytes_out += len(data)
        self.transport.write(data)


class EchoProtocol(_ServerProtocol):
    def data_received(self, data: bytes) -> None:
        self.stats.bytes_in += len(data)
        self.stats.requests += 1
        self._write(data)


class HttpProtocol(_ServerProtocol):
    inbuf = b""

    def data_received(self, data: bytes) -> None:
        self.stats.bytes_in += len(data)
        if self.inbuf:
            data = self.inbuf + data
        config = self.server.config
        result = http_consume(data, config.max_head_bytes, config.http_close)
        self.inbuf = result.rest
        self.stats.requests += result.requests
        if result.output:
            self._write(result.output)
        if result.close:
            assert self.transport is not None
            self.transport.close()


class AsyncioServer:
    """Runs the asyncio (or uvloop) reference server until SIGTERM/SIGINT."""

    def __init__(
        self, config: ServerConfig, listener: socket.socket, stats: ServerStats, use_uvloop: bool
    ) -> None:
        self.config = config
        self.listener = listener
        self.stats = stats
        self.use_uvloop = use_uvloop
        self.transports: set[asyncio.BaseTransport] = set()
        # Before READY, which reports the seed and the calibration (uvloop has no wait to time).
        timed = config.instrumentation and not use_uvloop
        self._sampler = start_sampling(config, stats) if timed else None

    def _new_loop(self) -> asyncio.AbstractEventLoop:
        if self.use_uvloop:
            import uvloop

            return uvloop.new_event_loop()
        if self._sampler is not None:
            return asyncio.SelectorEventLoop(TimedEpollSelector(self.stats, self._sampler))
        return asyncio.SelectorEventLoop(selectors.EpollSelector())

    def run(self) -> None:
        loop = self._new_loop()
        try:
            loop.run_until_complete(self._serve(loop))
        finally:
            loop.close()

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        protocol: type[_ServerProtocol] = (
            HttpProtocol if self.config.protocol == "http" else EchoProtocol
        )
        factory: Callable[[], asyncio.Protocol] = lambda: protocol(self)  # noqa: E731
        self.listener.setblocking(False)
        server = await loop.create_server(factory, sock=self.listener, backlog=self.config.backlog)
        stop = asyncio.Event()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, stop.set)
        release_stop_signals()
        self.stats.registered_fds = 1
        await stop.wait()
        server.close()
        for transport in list(self.transports):
            transport.abort()
        await asyncio.sleep(0)


def make_asyncio_server(
    config: ServerConfig, listener: socket.socket, stats: ServerStats
) -> AsyncioServer:
    return AsyncioServer(config, listener, stats, use_uvloop=False)


def make_uvloop_server(
    config: ServerConfig, listener: socket.socket, stats: ServerStats
) -> AsyncioServer:
    return AsyncioServer(config, listener, stats, use_uvloop=True)
