"""The metric catalogue: every measured column of the trial table declared once.

A ``Metric`` holds everything the project knows about a measured quantity: its
column name, unit, pandas dtype, which way is better, what it means and where it
is computed. The trial table's columns (``bench.measure.columns``), the store's
schema, ``bench compare``, the charts and the report read names, units and
directions from here; none spells a metric's name itself.

This module sits beside the stages, not in one: the measuring code computes the
metrics and the store, analysis and presentation read them, so every stage
imports it and it imports none of them.

A module outside the packages adds a metric through the same route as a backend
or a scenario: name it in ``SELECTBENCH_PLUGINS`` and call ``register`` at its
import with a ``compute`` function. The trial protocol calls that function on
every load trial's ``bench.measure.record.TrialRecord`` (the load generator's
result, the server's reads at the window's edges and the built-in columns) and
stores what it returns in the metric's column::

    from bench import metrics

    metrics.register(metrics.Metric(
        name="requests_per_wait_call", unit="requests per call", dtype="float64",
        better=metrics.Better.HIGHER, description="requests answered per wait call",
        compute=lambda rec: rec.server_delta.requests / rec.server_delta.wait_calls,
        compared=True, reported=True,
    ))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.measure.record import TrialRecord


class Better(StrEnum):
    """Which way a metric improves (a StrEnum: it prints and serialises as its value)."""

    LOWER = "lower"
    HIGHER = "higher"


# pandas dtypes a trial-table column may have ("Int64" and "boolean" are nullable:
# a failed trial leaves a measurement empty instead of inventing a zero).
DTYPES = ("float64", "Int64", "boolean", "string")

# Where the built-in metrics are computed (dotted paths; a test resolves each).
LOAD = "bench.measure.columns.load_columns"
SERVER = "bench.measure.columns.server_window_columns"
MACHINE = "bench.measure.columns.machine_window_columns"
FACTS = "bench.measure.columns.server_fact_columns"
PROBE = "bench.measure.drivers.drive_probe"
CHURN = "bench.measure.scenarios.churn.cpu_per_connection_us"
DISTURBANCE = "bench.measure.machine.disturbance.foreign_cpu_columns"

Compute = Callable[["TrialRecord"], Any]


@dataclass(frozen=True)
class Metric:
    """One measured column of the trial table, declared once."""

    name: str
    """The column's name in trials.csv / trials.parquet."""
    unit: str
    """What one unit of its value is ("us per request", "req/s", "count", ...)."""
    dtype: str
    """Its pandas dtype, one of ``DTYPES``."""
    better: Better | None
    """Which way is better; None where neither is (a count of the load, a fact)."""
    description: str
    """What it measures, in a sentence."""
    computed_by: tuple[str, ...] = ()
    """Dotted paths of the functions that produce it (from ``compute`` when given)."""
    compute: Compute | None = None
    """A plugin metric's function: TrialRecord -> value (None: not measured)."""
    compared: bool = False
    """``bench compare`` sets the two runs' values side by side."""
    reported: bool = False
    """report.md tabulates its medians per cell (the built-in ones come with a chart)."""

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name != self.name.lower():
            raise ValueError(
                f"metric {self.name!r}: its name is a column name, lower case letters, digits "
                "and underscores"
            )
        if self.dtype not in DTYPES:
            raise ValueError(
                f"metric {self.name!r}: dtype {self.dtype!r} is not one of {', '.join(DTYPES)}"
            )
        if self.better is not None and not isinstance(self.better, Better):
            raise ValueError(
                f"metric {self.name!r}: better must be Better.LOWER, Better.HIGHER or None, "
                f"not {self.better!r}"
            )
        if not self.unit.strip() or not self.description.strip():
            raise ValueError(f"metric {self.name!r}: declare its unit and a description")
        if self.compute is not None and not self.computed_by:
            fn = self.compute
            where = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"
            object.__setattr__(self, "computed_by", (where,))
        if not self.computed_by:
            raise ValueError(
                f"metric {self.name!r}: say where it is computed (computed_by), or give the "
                "function that computes it (compute)"
            )


def _m(name: str, unit: str, dtype: str, better: Better | None, where: str | tuple[str, ...],
       description: str, *, compared: bool = False) -> Metric:  # fmt: skip
    computed_by = (where,) if isinstance(where, str) else where
    return Metric(name, unit, dtype, better, description, computed_by, compared=compared)


LOWER, HIGHER = Better.LOWER, Better.HIGHER
US_PER_REQ = "us per request"

# In the order of the trial table.
THROUGHPUT_RPS = _m("throughput_rps", "req/s", "float64", HIGHER, LOAD,
    "requests answered per second of the measured window", compared=True)  # fmt: skip
ACHIEVED_RATE_RATIO = _m("achieved_rate_ratio", "ratio", "float64", HIGHER, LOAD,
    "open loop: the rate achieved over the rate requested")  # fmt: skip
REQUESTS = _m("requests", "count", "Int64", None, (LOAD, PROBE),
    "requests answered in the window (fd-limit: connections answered)")  # fmt: skip
ERRORS = _m("errors", "count", "Int64", LOWER, (LOAD, PROBE),
    "requests that failed in the window")  # fmt: skip
LATENCY_P50_US = _m("latency_p50_us", "us", "float64", LOWER, LOAD,
    "median latency, corrected for coordinated omission", compared=True)  # fmt: skip
LATENCY_P90_US = _m("latency_p90_us", "us", "float64", LOWER, LOAD,
    "90th percentile latency, corrected for coordinated omission")  # fmt: skip
LATENCY_P99_US = _m("latency_p99_us", "us", "float64", LOWER, LOAD,
    "99th percentile latency, corrected for coordinated omission", compared=True)  # fmt: skip
LATENCY_P999_US = _m("latency_p999_us", "us", "float64", LOWER, LOAD,
    "99.9th percentile latency, corrected for coordinated omission")  # fmt: skip
LATENCY_MAX_US = _m("latency_max_us", "us", "float64", LOWER, LOAD,
    "largest latency, corrected for coordinated omission")  # fmt: skip
UNCORRECTED_LATENCY_P50_US = _m("uncorrected_latency_p50_us", "us", "float64", LOWER, LOAD,
    "median latency from the actual send time")  # fmt: skip
UNCORRECTED_LATENCY_P99_US = _m("uncorrected_latency_p99_us", "us", "float64", LOWER, LOAD,
    "99th percentile latency from the actual send time")  # fmt: skip
LATENCY_SAMPLES = _m("latency_samples", "count", "Int64", None, LOAD,
    "requests the latency percentiles rest on (p99 of n is the n/100-th largest)")  # fmt: skip
SERVER_CPU_USER_S = _m("server_cpu_user_s", "s", "float64", LOWER, SERVER,
    "the server's user CPU time over the window")  # fmt: skip
SERVER_CPU_SYSTEM_S = _m("server_cpu_system_s", "s", "float64", LOWER, SERVER,
    "the server's system CPU time over the window")  # fmt: skip
SERVER_CPU_US_PER_REQ = _m("server_cpu_us_per_req", US_PER_REQ, "float64", LOWER, SERVER,
    "the server's CPU time over the window per request it answered", compared=True)  # fmt: skip
SERVER_WAIT_CALLS = _m("server_wait_calls", "count", "Int64", None, SERVER,
    "wait calls (select, poll, epoll_wait) the server made in the window")  # fmt: skip
SERVER_WAIT_US_PER_CALL = _m("server_wait_us_per_call", "us per call", "float64", LOWER, SERVER,
    "CPU time inside one wait call (sampled calls, net of the clock reads)",
    compared=True)  # fmt: skip
SERVER_WAIT_US_PER_EVENT = _m("server_wait_us_per_event", "us per event", "float64", LOWER,
    SERVER, "CPU time inside the wait call per event it returned (sampled calls)")  # fmt: skip
SERVER_EVENTS_PER_CALL = _m("server_events_per_call", "events per call", "float64", None,
    SERVER, "events one wait call returned, on average")  # fmt: skip
SERVER_RSS_BYTES = _m("server_rss_bytes", "bytes", "Int64", LOWER, (SERVER, PROBE),
    "the server's resident memory at the window's end")  # fmt: skip
SERVER_NUM_FDS = _m("server_num_fds", "count", "Int64", None, (SERVER, PROBE),
    "descriptors the server held at the window's end")  # fmt: skip
SERVER_CURRENT_CONNECTIONS = _m("server_current_connections", "connections", "Int64", None,
    (SERVER, PROBE), "connections the server held at the window's end")  # fmt: skip
SERVER_REJECTED_FD_SETSIZE = _m("server_rejected_fd_setsize", "connections", "Int64", LOWER,
    (SERVER, PROBE), "connections refused for a descriptor number >= FD_SETSIZE")  # fmt: skip
CONNECTIONS_ESTABLISHED = _m("connections_established", "connections", "Int64", None,
    (LOAD, PROBE), "connections the load generator or probe established")  # fmt: skip
CONNECTIONS_SERVED = _m("connections_served", "connections", "Int64", HIGHER,
    (SERVER, PROBE, "bench.measure.drivers.drive_load"),
    "connections the server served (churn: accepted in the window)", compared=True)  # fmt: skip
CONNECTIONS_REJECTED = _m("connections_rejected", "connections", "Int64", LOWER,
    (SERVER, PROBE), "connections the server refused (FD_SETSIZE or EMFILE)")  # fmt: skip
CONNECT_ERRORS = _m("connect_errors", "count", "Int64", LOWER, (LOAD, PROBE),
    "connection attempts that failed")  # fmt: skip
CLIENT_OBSERVATION = _m("client_observation", "JSON", "string", None, (LOAD, PROBE),
    "what the clients saw: error kinds and counts (fd-limit: each connection's fate)")  # fmt: skip
LOADGEN_SATURATED = _m("loadgen_saturated", "flag", "boolean", None, LOAD,
    "a load generator worker was busy past its saturation bound")  # fmt: skip
LOADGEN_CORE = _m("loadgen_core", "name", "string", None, LOAD,
    "the load generator's send/receive loop: c (loadgen._cload), python, or mixed")  # fmt: skip
LOADGEN_CPU_US_PER_REQ = _m("loadgen_cpu_us_per_req", US_PER_REQ, "float64", None, LOAD,
    "the load generator's CPU time per request, its polling for answers left out")  # fmt: skip
SERVER_CONNECTIONS_START = _m("server_connections_start", "connections", "Int64", None, SERVER,
    "window integrity: connections the server held at the window's start")  # fmt: skip
SERVER_CONNECTIONS_END = _m("server_connections_end", "connections", "Int64", None, SERVER,
    "window integrity: connections the server held at the window's end")  # fmt: skip
SERVER_BUSY_FRACTION = _m("server_busy_fraction", "fraction", "float64", None, SERVER,
    "server CPU time (schedstat) over the window's wall time; below ~0.9 in closed loop "
    "the server waited for the client")  # fmt: skip
MACHINE_CPU_US_PER_REQ = _m("machine_cpu_us_per_req", US_PER_REQ, "float64", LOWER, MACHINE,
    "the whole machine's busy time (/proc/stat) per request answered, the client's part of "
    "a wake-up included and its polling for answers left out; empty across hosts")  # fmt: skip
STEAL_FRACTION = _m("steal_fraction", "fraction", "float64", None, MACHINE,
    "time stolen by the hypervisor over the window's wall time x CPUs online")  # fmt: skip
SERVER_RUN_DELAY_US = _m("server_run_delay_us", "us", "float64", None, MACHINE,
    "time the server's threads were runnable but waiting for a CPU (schedstat)")  # fmt: skip
FOREIGN_CPU_SHARE_SERVER = _m("foreign_cpu_share_server", "fraction", "float64", None, DISTURBANCE,
    "CPU time other processes took on the server's CPU (/proc/stat less the server's own) "
    "over the window; above the bound the trial is flagged disturbed")  # fmt: skip
FOREIGN_CPU_SHARE_LOAD = _m("foreign_cpu_share_load", "fraction", "float64", None, DISTURBANCE,
    "CPU time other processes took on the load generator's CPUs (/proc/stat less its "
    "workers' and bench's own) over the window x those CPUs; empty across hosts")  # fmt: skip
SEND_LAG_P50_US = _m("send_lag_p50_us", "us", "float64", None, LOAD,
    "open loop: median of how late the load generator sent")  # fmt: skip
SEND_LAG_P99_US = _m("send_lag_p99_us", "us", "float64", None, LOAD,
    "open loop: 99th percentile of how late the load generator sent")  # fmt: skip
RECONNECTS = _m("reconnects", "count", "Int64", None, LOAD,
    "connections the server closed after a complete answer, reopened in the window")  # fmt: skip
SERVER_WAIT_SAMPLE_SEED = _m("server_wait_sample_seed", "seed", "Int64", None, FACTS,
    "the seed of the server's random 1-in-8 sample of wait calls")  # fmt: skip
SERVER_WAIT_CLOCK_OVERHEAD_NS = _m("server_wait_clock_overhead_ns", "ns", "Int64", None, FACTS,
    "the calibrated cost of one pair of thread-clock reads, subtracted per sample")  # fmt: skip
SERVER_FD_NUMBER_LIMIT = _m("server_fd_number_limit", "descriptor number", "Int64", None, FACTS,
    "the descriptor-number limit the server's start-up probe found")  # fmt: skip
SERVER_SELECT_PROBE_ERROR = _m("server_select_probe_error", "text", "string", None, FACTS,
    "what select.select said at the start-up probe (CPython's refusal)")  # fmt: skip
SERVER_CPU_US_PER_CONN = _m("server_cpu_us_per_conn", "us per connection", "float64", LOWER,
    CHURN, "churn: server CPU in the window per connection it accepted")  # fmt: skip

BUILTIN: tuple[Metric, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Metric))

_PLUGINS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add a metric from outside the packages; it needs a ``compute`` function.

    Registering an identical declaration again is a no-op (a plugin imported twice).
    """
    if metric.compute is None:
        raise ValueError(
            f"metric {metric.name!r}: a registered metric needs compute=, the function that "
            "computes it from the trial's TrialRecord"
        )
    if any(m.name == metric.name for m in BUILTIN):
        raise ValueError(f"metric {metric.name!r} is built in: pick another name")
    existing = _PLUGINS.get(metric.name)
    if existing is not None and existing != metric:
        raise ValueError(
            f"metric {metric.name!r} is already registered by {existing.computed_by[0]}: "
            "pick another name"
        )
    _PLUGINS[metric.name] = metric
    return metric


def registered() -> tuple[Metric, ...]:
    """The metrics added through ``register``, in registration order (plugins loaded)."""
    from servers.registry import load_plugins

    load_plugins()
    return tuple(_PLUGINS.values())


def all_metrics() -> tuple[Metric, ...]:
    """Every metric: the built-in ones in table order, then the registered ones."""
    return BUILTIN + registered()


def get(name: str) -> Metric:
    """The metric called ``name``; KeyError naming the known ones otherwise."""
    for metric in all_metrics():
        if metric.name == name:
            return metric
    raise KeyError(f"unknown metric {name!r}: known are {', '.join(names())}")


def names() -> tuple[str, ...]:
    return tuple(m.name for m in all_metrics())


def dtypes(*declared: Metric) -> dict[str, str]:
    """Column name -> dtype of ``declared``, in that order (a table's columns)."""
    return {m.name: m.dtype for m in declared}


def compared() -> tuple[str, ...]:
    """Names of the metrics ``bench compare`` compares, in catalogue order."""
    return tuple(m.name for m in all_metrics() if m.compared)


def reported() -> tuple[Metric, ...]:
    """The metrics report.md tabulates on their own (not through a chart)."""
    return tuple(m for m in all_metrics() if m.reported)
