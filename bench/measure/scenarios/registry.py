"""What a scenario declares (``Scenario``) and the table it is registered in.

A scenario says what it measures and nothing else: its settings per preset,
the cells it plans, the driver that loads a server for one trial, the extra
table columns it writes, how long a trial takes, and which verdict rules and
charts read its rows (by name, so this stage never imports a later one).

Adding a scenario is one module plus one ``register`` call. Modules outside
the package register theirs the same way, loaded through the
``SELECTBENCH_PLUGINS`` environment variable (see ``servers.registry``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.measure.trial import Cell, Trial, load_trial_estimate_s
from bench.tables import declare_scenario_columns

if TYPE_CHECKING:
    import pandas as pd

    from bench.measure.config import BenchConfig
    from bench.measure.drivers import Driver


@dataclass(frozen=True)
class Scenario:
    """What one scenario measures; registered once, read by the planner and the runner."""

    name: str
    summary: str
    # Preset name -> this scenario's settings (a frozen dataclass of its own).
    # A preset without an entry does not run the scenario.
    presets: Mapping[str, Any]
    # (settings, run config) -> the cells of the sweep, in order.
    cells: Callable[[Any, BenchConfig], list[Cell]] = field(default=lambda settings, cfg: [])
    # The load driver of one trial (see bench.measure.drivers); None: no trials.
    driver: Driver | None = None
    # Columns this scenario adds to the trial table beyond the common ones (name -> dtype).
    columns: Mapping[str, str] = field(default_factory=dict)
    # Expected seconds of one of its trials.
    estimate_s: Callable[[Trial], float] = load_trial_estimate_s
    # At most this many repetitions of its cells (None: the run's count). A
    # scenario whose result is a count, not a noisy time, needs fewer.
    max_repetitions: int | None = None
    # Names of the charts that read its rows (bench.present).
    charts: tuple[str, ...] = ()
    # Scenarios measured in-process after the trials (micro benchmarks):
    # (settings, run config, output folder) -> a table, and its seconds estimate.
    measure_in_process: Callable[[Any, BenchConfig, Path], pd.DataFrame] | None = None
    in_process_estimate_s: Callable[[Any], float] | None = None


class UnknownScenario(KeyError):
    """A scenario name nobody registered; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0])


_REGISTRY: dict[str, Scenario] = {}


def register(scenario: Scenario) -> Scenario:
    """Add a scenario (a second registration of the same name replaces the first), and
    declare the columns it adds to the trial table (``bench.tables``)."""
    _REGISTRY[scenario.name] = scenario
    if scenario.columns:
        declare_scenario_columns(scenario.name, scenario.columns)
    return scenario


def registered() -> dict[str, Scenario]:
    """The registry itself, in registration order (read by bench.measure.scenarios)."""
    return _REGISTRY
