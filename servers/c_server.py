"""The C twin servers (c-select, c-poll, c-epoll, c-epoll-et, c-select-big): the glue around
servers._cloop.

Python does everything but the loop, exactly as for the Python servers: the
`python -m servers` path (servers.cli) opens the listener, pins the CPU, sets
the descriptor limit, prints READY and runs the control threads. `run()` hands
the listener's descriptor to the C loop (servers/c/loop.c), which releases the
GIL for as long as it serves, so the control threads keep answering. The
counters live in a C struct; the server's `ServerStats` reads them at every
snapshot, so both control channels work unchanged.

SIGTERM/SIGINT: a Python signal handler cannot run while C holds the main
thread, but CPython's C-level handler still writes the signal number to the
wake-up descriptor (`signal.set_wakeup_fd`), exactly as for the Python loop.
The C loop watches that pipe, stops on a SIGTERM or SIGINT byte, closes every
client socket and returns; the process then exits 0.

The extension is optional (setup.py). Set SELECTBENCH_CLOOP to the path of
another build of it (the sanitizer build of .ci/run) to load that one instead.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import sysconfig
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from lifeline.extension import ExtensionPathError, load_extension_module
from servers import registry
from servers.config import ServerConfig
from servers.limits import STOP_SIGNALS, release_stop_signals
from servers.sampling import CALIBRATION_PAIRS, new_seed
from servers.stats import ServerStats

EXTENSION = "servers._cloop"
EXTENSION_PATH_ENV = "SELECTBENCH_CLOOP"
INSTALL_HINT = "apt-get install gcc python3-dev, then pip install -e . again"


def _missing_build_tools() -> str:
    """What the build lacked, as far as this machine tells."""
    missing = []
    if not any(shutil.which(cc) for cc in ("gcc", "cc", "clang")):
        missing.append("no C compiler (gcc) is installed")
    include = sysconfig.get_paths().get("include", "")
    if not (Path(include) / "Python.h").is_file():
        missing.append(f"Python's headers (Python.h, looked for in {include}) are missing")
    if not missing:
        return "the build failed or was not run; see the output of pip install -e . -v"
    return " and ".join(missing)


def load_extension() -> ModuleType:
    """servers._cloop, or the build named by SELECTBENCH_CLOOP; ImportError says what is missing."""
    try:
        return load_extension_module(EXTENSION, EXTENSION_PATH_ENV)
    except ExtensionPathError:
        raise
    except ImportError as exc:
        raise ImportError(
            f"the C extension {EXTENSION} is not built ({exc}): {_missing_build_tools()}"
        ) from exc


_cloop = load_extension()


def _read_counters_from(stats: ServerStats, counters: Callable[[], dict[str, int]]) -> None:
    """Make every `stats.snapshot()` first copy the C loop's counters into `stats`.

    The control channels were handed `stats` by servers.cli; its class gets a
    snapshot() that refreshes the counters (same slots, so the object stays the
    same for everyone holding it).
    """
    base = type(stats)

    def snapshot(self: ServerStats) -> dict[str, object]:
        for name, value in counters().items():
            setattr(self, name, value)
        return base.snapshot(self)

    stats.__class__ = type(
        "CLoopServerStats", (base,), {"__slots__": (), "snapshot": snapshot, "__doc__": None}
    )


class CLoopServer:
    """One C event loop on `mechanism`, serving `listener` until SIGTERM/SIGINT or stop()."""

    def __init__(
        self, config: ServerConfig, listener: socket.socket, stats: ServerStats, mechanism: str
    ) -> None:
        self.config = config
        self.listener = listener
        self.stats = stats
        seed = 0
        if config.instrumentation:  # as servers.sampling.start_sampling, timing C's clock reads
            seed = new_seed() if config.wait_sample_seed is None else config.wait_sample_seed
            stats.wait_cpu_sample_seed = seed
            stats.wait_cpu_clock_overhead_ns = _cloop.calibrate_clock_pair(CALIBRATION_PAIRS)
        declared = registry.get(config.backend)
        if declared.fd_number_limit is not None:
            # No probe as for Python's select.select: C's limit is the fd_set type itself.
            stats.fd_number_limit = _cloop.FD_SETSIZE
            stats.select_probe_status = (
                f"C fd_set holds {_cloop.FD_SETSIZE} descriptor bits (sizeof(fd_set) * 8 in "
                f"this build); the {config.backend} adapter refuses higher numbers with EINVAL"
            )
        elif registry.SELECT_PAST_FD_SETSIZE.admits(declared):
            # The bitmaps are sized from the soft limit servers.cli has just raised; accept()
            # returns no descriptor numbered at or above it.
            nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            stats.fd_number_limit = None if nofile == resource.RLIM_INFINITY else nofile
            stats.select_probe_status = (
                f"C descriptor bitmaps sized from RLIMIT_NOFILE ({nofile} descriptors), grown on "
                "demand: select(2) takes them whole, only glibc's fd_set type holds "
                f"{_cloop.FD_SETSIZE}"
            )
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._loop: Any = _cloop.Loop(
            mechanism=mechanism,
            listen_fd=listener.fileno(),
            wake_fd=self._wake_r,
            wake_write_fd=self._wake_w,
            http=config.protocol == "http",
            http_close=config.http_close,
            instrumentation=config.instrumentation,
            max_queued_bytes=config.max_queued_bytes,
            max_head_bytes=config.max_head_bytes,
            # The same calls as the Python loop sample with this seed (servers/c/sampling.c).
            sample_seed=seed,
        )
        _read_counters_from(stats, self._loop.counters)

    def _on_signal(self, signum: int, frame: object) -> None:
        pass  # the wake-up byte has already told the C loop to stop

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT (or stop()), then close every socket."""
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:
            for sig in STOP_SIGNALS:
                signal.signal(sig, self._on_signal)
            signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
            release_stop_signals()
        self.listener.setblocking(False)
        try:
            self._loop.run()  # the GIL is released until the loop returns
        finally:
            if in_main:
                signal.set_wakeup_fd(-1)
            self.listener.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def stop(self) -> None:
        """Ask the loop to stop from another thread (in-process use; servers use signals)."""
        self._loop.stop()


def make_c_server(config: ServerConfig, listener: socket.socket, stats: ServerStats) -> CLoopServer:
    """The C loop on the adapter named by the mechanism ``config.backend`` declares."""
    return CLoopServer(config, listener, stats, registry.get(config.backend).mechanism)
