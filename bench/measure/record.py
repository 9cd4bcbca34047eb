"""What one load trial measured, as a registered metric's ``compute`` function reads it.

The driver builds a ``TrialRecord`` once the window is closed; ``metric_columns``
calls every registered metric's function on it (``bench.metrics.register``), so a
metric from outside the packages reaches the trial table without a change here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from bench import metrics
from bench.measure.placement import Edge
from bench.measure.trial import Trial
from loadgen import LoadResult
from servers.stats import StatsDelta


@dataclass(frozen=True)
class TrialRecord:
    """One load trial's measurements: the plugin metrics' input."""

    trial: Trial
    """The cell and repetition (scenario, backend, mode, connection counts...)."""
    load: LoadResult
    """The load generator's typed result for the window."""
    server_start: Edge
    """The server read at the window's start (counters, process CPU, machine CPU)."""
    server_end: Edge
    """The same read at the window's end."""
    columns: Mapping[str, Any]
    """The built-in metrics' values for this trial, by column name (read-only)."""

    @property
    def server_delta(self) -> StatsDelta | None:
        """The server's own counters over the window; None when a read failed."""
        a, b = self.server_start.stats, self.server_end.stats
        return a.delta(b) if a is not None and b is not None else None


class MetricError(RuntimeError):
    """A registered metric's function raised; the trial is recorded as failed with this."""


def record(
    trial: Trial, load: LoadResult, start: Edge, end: Edge, columns: Mapping[str, Any]
) -> TrialRecord:
    return TrialRecord(trial, load, start, end, MappingProxyType(dict(columns)))


def metric_columns(rec: TrialRecord) -> dict[str, Any]:
    """The registered metrics' values for one trial, by column name."""
    out: dict[str, Any] = {}
    for metric in metrics.registered():
        assert metric.compute is not None  # register() refuses a metric without one
        try:
            out[metric.name] = metric.compute(rec)
        except Exception as exc:
            raise MetricError(
                f"metric {metric.name!r} ({metric.computed_by[0]}) raised "
                f"{type(exc).__name__}: {exc}; fix the function or remove its module from "
                "SELECTBENCH_PLUGINS"
            ) from exc
    return out
