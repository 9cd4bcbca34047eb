"""Which loop a worker runs: the compiled core (loadgen._cload) when it is built,
else the Python loop (loadgen.keepalive, loadgen.churn).

The choice is the worker's and is reported per worker (``workers[].core``) and for the
run (``loadgen_core``). Environment, read in the worker:

  SELECTBENCH_LOADGEN_CORE=python   run the Python loop even where the core is built
  SELECTBENCH_LOADGEN_CORE=c        require the core: a worker without it fails, naming why
  SELECTBENCH_CLOAD=/path/_cload.so load this build of the core (the sanitizer builds that
                                    .ci/sanitize-c makes) instead of the installed one
  SELECTBENCH_LOADGEN_POLL_NS=N     closed loop on the core: poll up to N ns before blocking
                                    (default DEFAULT_POLL_NS; 0 blocks at once; loadgen/c/core.c
                                    gives the measurement). The time spent polling is reported
                                    (workers[].polled_s) and left out of the busy fraction
Keep-alive workers run loadgen.keepalive_c, churn workers loadgen.churn_c, on the core.
"""

from __future__ import annotations

import os
from collections import Counter
from types import ModuleType
from typing import Any

from lifeline.extension import ExtensionPathError, load_extension_module
from loadgen.errors import ConfigError

CORE_ENV = "SELECTBENCH_LOADGEN_CORE"
CORE_PATH_ENV = "SELECTBENCH_CLOAD"
POLL_ENV = "SELECTBENCH_LOADGEN_POLL_NS"
# A poll longer than this is a busy loop, not a margin: 10 ms.
MAX_POLL_NS = 10_000_000
# 30 us: the server's answers to a 100-connection closed loop arrive well inside it, so the
# worker almost never sleeps (0.01 sleeps per answer against 0.42-0.74 blocking at once,
# loadgen/c/core.c), and an idle worker gives its CPU back after 30 us.
DEFAULT_POLL_NS = 30_000
EXTENSION = "loadgen._cload"
CHOICES = ("c", "python")
BUILD_HINT = (
    "apt-get install gcc python3-dev, then pip install -e . (or python setup.py build_ext "
    "--inplace)"
)


def wanted_core() -> str | None:
    """The core the environment asks for ("c", "python"), or None: the core if built."""
    value = os.environ.get(CORE_ENV, "").strip().lower()
    if not value:
        return None
    if value not in CHOICES:
        raise ConfigError(
            f"{CORE_ENV}={value!r} is not one of {', '.join(CHOICES)}: unset it to use the "
            "compiled core when it is built, or set it to one of those"
        )
    return value


def wanted_poll_ns() -> int:
    """The closed loop's poll before blocking (ns): the environment's, else DEFAULT_POLL_NS."""
    value = os.environ.get(POLL_ENV, "").strip()
    if not value:
        return DEFAULT_POLL_NS
    if not value.isdigit() or int(value) > MAX_POLL_NS:
        raise ConfigError(
            f"{POLL_ENV}={value!r} is not a whole number of nanoseconds from 0 to "
            f"{MAX_POLL_NS}: unset it (poll {DEFAULT_POLL_NS} ns) or give e.g. 0 (block at once)"
        )
    return int(value)


def load_core() -> ModuleType | None:
    """loadgen._cload (or the build SELECTBENCH_CLOAD names); None when it is not built."""
    try:
        return load_extension_module(EXTENSION, CORE_PATH_ENV)
    except ExtensionPathError as exc:
        raise ConfigError(str(exc)) from exc
    except ImportError:
        return None


def compiled_core() -> ModuleType | None:
    """The core a keep-alive worker should run, or None for the Python loop."""
    wanted = wanted_core()
    if wanted == "python":
        return None
    module = load_core()
    if module is None and wanted == "c":
        raise ConfigError(f"{CORE_ENV}=c but {EXTENSION} is not built: {BUILD_HINT}")
    return module


class CoreCounts:
    """Mixin of a worker whose loop runs in the compiled core (``self.engine``): the tick
    takes the core's latencies and send lags with the worker's own, and the window's
    polling time is the core's."""

    engine: Any

    def polled_ns(self) -> int:
        return int(getattr(self.engine, "polled_ns", 0)) if self.engine is not None else 0

    def take_counts(self) -> tuple[Counter[int], Counter[int], Counter[int]]:
        lat_c, lat_u, lag = super().take_counts()  # type: ignore[misc]
        if self.engine is not None:
            core_c, core_u, core_lag = self.engine.take_counts()
            lat_c.update(core_c)
            lat_u.update(core_u)
            lag.update(core_lag)
        return lat_c, lat_u, lag
