"""The scenario registry: every scenario is one module that declares a ``Scenario``.

A scenario says what it measures and nothing else: its settings per preset,
the cells it plans, the driver that loads a server for one trial, the extra
table columns it writes, how long a trial takes, and which verdict rules and
charts read its rows (by name, so this stage never imports a later one).

Adding a scenario is one module calling ``register(Scenario(...))``
(``bench.measure.scenarios.registry``) plus one line in ``BUILTIN_MODULES``.
Modules outside the package register theirs the same way, loaded through the
``SELECTBENCH_PLUGINS`` environment variable (see ``servers.registry``).
"""

from __future__ import annotations

import importlib

from bench.measure.scenarios.registry import Scenario, UnknownScenario, register, registered

__all__ = ["Scenario", "UnknownScenario", "all_scenarios", "get", "names", "reading", "register"]

# The built-in scenarios, in the order a run measures them.
BUILTIN_MODULES = (
    "idle_scaling",
    "idle_steps",
    "active_scaling",
    "fd_limit",
    "churn",
    "ready_fraction",
    "micro",
)
_loaded = False


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        importlib.import_module(f"{__name__}.{module}")
    from servers.registry import load_plugins

    load_plugins()


def get(name: str) -> Scenario:
    """The registered scenario called ``name``."""
    _ensure_loaded()
    try:
        return registered()[name]
    except KeyError:
        raise UnknownScenario(
            f"unknown scenario {name!r}: choose from {', '.join(registered())}"
        ) from None


def all_scenarios() -> tuple[Scenario, ...]:
    """Every registered scenario, in registration order."""
    _ensure_loaded()
    return tuple(registered().values())


def names() -> tuple[str, ...]:
    return tuple(s.name for s in all_scenarios())


def reading(*, chart: str) -> tuple[str, ...]:
    """Names of the scenarios whose rows a chart reads."""
    return tuple(s.name for s in all_scenarios() if chart in s.charts)
