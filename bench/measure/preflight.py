"""What a run checks before it measures anything: the policy, not the printing.

``preflight`` takes a configuration and returns the plan the run will measure
with every warning it must carry, or raises ``PreflightError`` whose message
names the cause and the remedy (``bench run`` prints it and exits with a usage
error). The rules:

- a backend that cannot run on this machine is refused when the user named it
  (``--backend``); when the preset chose it, it is left out with a warning;
- a backend named with ``--backend`` that no chosen cell can hold is refused
  with the reason of each cell, so a run never measures 0 trials of a named
  backend in silence;
- the sweep's connections must fit the descriptor limits of every host;
- the plan's estimate must fit the preset's budget, unless forced (then a
  warning) — plugin backends bring their own time, added to the budget when the
  budget was not given explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.measure.config import BenchConfig, shared_cpu
from bench.measure.machine.doctor import LimitError, check_limits
from bench.measure.plan import (
    PlanEstimate,
    estimate_plan,
    max_connections,
    plan_skips,
    plan_trials,
    plugin_trials_s,
)
from bench.measure.trial import Trial
from servers import registry

# A plan may overrun its budget's estimate by this factor before the run refuses it.
BUDGET_TOLERANCE = 1.0
SHARED_CPU_WARNING = (
    "shared CPU: only one CPU is available, so the server and the load generator "
    "share it; numbers include their contention"
)


class PreflightError(Exception):
    """The request cannot be measured as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Preflight:
    """The plan a run measures, and what it says about it before and in run.json."""

    cfg: BenchConfig
    trials: list[Trial]
    estimate: PlanEstimate
    # Every line goes to stderr as "warning: ..." and into run.json's warnings.
    warnings: tuple[str, ...]
    # The budget as the run states it, with any plugin backends' share.
    budget_text: str


def unavailable(cfg: BenchConfig) -> dict[str, str]:
    """Backend -> why it cannot run here (with the remedy), for the backends that cannot."""
    reasons = {name: registry.get(name).unavailable_reason() for name in cfg.backends}
    return {name: reason for name, reason in reasons.items() if reason}


def preflight(
    cfg: BenchConfig, *, budget_given: bool, force: bool, placement: Any = None
) -> Preflight:
    """The checked plan of ``cfg``; ``PreflightError`` when the run must not start."""
    warnings: list[str] = []
    missing = unavailable(cfg)
    problems = [f"backend {name}: {reason}" for name, reason in missing.items()]
    if problems and cfg.backends_named:
        raise PreflightError("; ".join(problems))
    if problems:
        # The preset's choice, not the user's: measure the rest and say why.
        cfg = cfg.replace(backends=tuple(b for b in cfg.backends if b not in missing))
        warnings.extend(f"skipped {text}" for text in problems)
    trials = plan_trials(cfg)
    estimate = estimate_plan(cfg, trials)
    skips = plan_skips(cfg)
    planned = {t.backend for t in trials}
    refused = [s for s in skips if cfg.backends_named and s.backend not in planned]
    if refused:
        raise PreflightError(
            "; ".join(s.describe() for s in refused)
            + ": drop it from --backend or choose a scenario or preset it can serve"
        )
    if not trials and not estimate.in_process_s:
        raise PreflightError(
            "the selection leaves nothing to measure: check --scenario and --backend"
        )
    warnings.extend(s.describe() for s in skips)
    try:
        (placement.check_limits if placement is not None else check_limits)(max_connections(trials))
    except LimitError as exc:
        raise PreflightError(str(exc)) from exc
    if placement is not None:
        warnings.extend(placement.warnings())
    elif shared_cpu(cfg):
        warnings.append(SHARED_CPU_WARNING)
    budget_text = f"{cfg.budget_s:.0f} s"
    plugin_s, plugins = (0.0, ()) if budget_given else plugin_trials_s(cfg, trials)
    if plugins:
        budget_text += f" + ~{plugin_s:.0f} s for the plugin backends {', '.join(plugins)}"
        cfg = cfg.replace(budget_s=cfg.budget_s + plugin_s)
    if estimate.total_s > cfg.budget_s * BUDGET_TOLERANCE:
        over = (
            f"the plan (~{estimate.total_s:.0f} s) exceeds the {cfg.preset} budget of "
            f"{cfg.budget_s:.0f} s: choose fewer scenarios/backends or repetitions, "
            f"raise --budget-s, or pass --force"
        )
        if not force:
            raise PreflightError(over)
        warnings.append(f"plan ~{estimate.total_s:.0f} s over budget {cfg.budget_s:.0f} s")
    return Preflight(cfg, trials, estimate, tuple(warnings), budget_text)
