"""``bench run --calibrate``: the preset's idle- and active-scaling cells on the same-server family.

The A/A check (``servers.calibration_backends``): the same cells and
repetitions as the chosen preset measures for the Python event-loop family,
with each sweep's backends renamed by mechanism to the same-server family's
(select -> aa-select, poll -> aa-poll, epoll -> aa-epoll; a mechanism the
family does not declare, epoll-et, and every other family's backends are
dropped). The plugin is named in SELECTBENCH_PLUGINS so that the server
subprocesses, which inherit the environment, know the backends too.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Mapping
from typing import Any

from bench.measure.config import BenchConfig, ConfigError
from servers import registry

CALIBRATION_MODULE = "servers.calibration_backends"
# The cells the verdict's claims 2 and 3 read for a family (claim 1's fd-limit probe,
# churn and the micro benchmarks do not compare a family's members).
CALIBRATION_SCENARIOS = ("idle-scaling", "active-scaling")
SOURCE_FAMILY = registry.FAMILY_PYTHON_LOOP
TARGET_FAMILY = registry.FAMILY_SAME_SERVER


def enable_calibration_backends() -> None:
    """Register the same-server family here and in every server this process starts."""
    names = [m.strip() for m in os.environ.get(registry.PLUGINS_ENV, "").split(",") if m.strip()]
    if CALIBRATION_MODULE not in names:
        os.environ[registry.PLUGINS_ENV] = ",".join([*names, CALIBRATION_MODULE])
    # The registry may have read SELECTBENCH_PLUGINS already (the CLI lists backends in
    # its help): register the family now (again is a no-op; the module may be imported
    # already while the registry was replaced, as tests do).
    for backend in importlib.import_module(CALIBRATION_MODULE).SAME_SERVER_BACKENDS:
        registry.register(backend)


def mechanism_map(
    source: str, target: str, mechanisms: tuple[str, ...] | None = None
) -> dict[str, str]:
    """``source`` family backend -> ``target`` family backend of the same mechanism.

    The first registered backend of each mechanism in ``target`` (as the verdict's
    roles are found); ``mechanisms`` narrows the map to those mechanisms.
    """
    by_mechanism: dict[str, str] = {}
    for b in registry.all_backends():
        if b.family == target and (mechanisms is None or b.mechanism in mechanisms):
            by_mechanism.setdefault(b.mechanism, b.name)
    return {
        b.name: by_mechanism[b.mechanism]
        for b in registry.all_backends()
        if b.family == source and b.mechanism in by_mechanism
    }


def map_settings(settings: Any, names: Mapping[str, str]) -> Any:
    """A scenario's settings with every ``backends`` tuple renamed through ``names``.

    Walks the settings dataclass (and the sweeps it holds): a name with no entry
    in ``names`` is dropped; None ("every backend of the run") stays None.
    """
    if not dataclasses.is_dataclass(settings) or isinstance(settings, type):
        return settings
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if f.name == "backends" and isinstance(value, tuple):
            changes[f.name] = tuple(dict.fromkeys(names[b] for b in value if b in names))
        elif isinstance(value, tuple) and any(dataclasses.is_dataclass(v) for v in value):
            changes[f.name] = tuple(map_settings(v, names) for v in value)
        elif dataclasses.is_dataclass(value):
            changes[f.name] = map_settings(value, names)
    return dataclasses.replace(settings, **changes)


def family_config(
    cfg: BenchConfig,
    target: str,
    mechanisms: tuple[str, ...] | None = None,
    scenarios: tuple[str, ...] = CALIBRATION_SCENARIOS,
) -> BenchConfig:
    """``cfg``'s idle- and active-scaling cells, mapped from the Python family to ``target``.

    ``cfg`` is a preset's config, not yet narrowed to some scenarios or backends.
    """
    wrong = [s for s in scenarios if s not in CALIBRATION_SCENARIOS]
    if wrong:
        raise ConfigError(
            f"--calibrate measures only {' and '.join(CALIBRATION_SCENARIOS)}, not "
            f"{', '.join(wrong)}: drop --scenario or name one of those"
        )
    missing = [s for s in scenarios if s not in cfg.settings]
    if missing:
        raise ConfigError(
            f"preset {cfg.preset!r} has no {' or '.join(missing)} cells to calibrate on: "
            "choose a preset that measures both (quick, standard, full or tiny)"
        )
    names = mechanism_map(SOURCE_FAMILY, target, mechanisms)
    return cfg.replace(
        scenarios=tuple(scenarios),
        settings={s: map_settings(cfg.settings[s], names) for s in scenarios},
        # The preset's own backends, renamed: a sweep that names none measures these.
        backends=tuple(dict.fromkeys(names[b] for b in cfg.backends if b in names)),
    )


def calibration_config(
    cfg: BenchConfig, scenarios: tuple[str, ...] = CALIBRATION_SCENARIOS
) -> BenchConfig:
    """The A/A run of ``cfg``'s preset: its idle/active cells on the same-server family."""
    enable_calibration_backends()
    return family_config(cfg, TARGET_FAMILY, scenarios=scenarios).replace(calibrate=True)
