"""Progress display for ``bench run``: scenario, backend, cell and time left.

Time left comes from the plan's own estimate of each remaining trial, scaled
by how fast the run has gone so far (actual / estimated): rich's default
speed-based estimate would be wrong because trials differ tenfold in length.
Output goes to stderr so stdout carries only the results (verdict table).
When stderr is not a terminal (CI, tests) one plain line per trial is printed
instead of a live bar.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from bench.measure.plan import trial_estimate_s
from bench.measure.trial import Trial


def _fmt_s(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class RunProgress:
    """Context manager that shows trial-by-trial progress of a run."""

    def __init__(self, trials: list[Trial], extra_estimated_s: float = 0.0) -> None:
        self._estimates = [trial_estimate_s(t) for t in trials]
        self._total = len(trials)
        self._extra_s = extra_estimated_s
        self._done_estimated_s = 0.0
        self._started = time.monotonic()
        self._done = 0
        self.console = Console(stderr=True)
        self._live = self.console.is_terminal
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("left ~{task.fields[left]}"),
            console=self.console,
            transient=False,
        )
        self._task = self._progress.add_task("starting", total=self._total, left="?")

    def __enter__(self) -> RunProgress:
        if self._live:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live:
            self._progress.stop()

    def time_left_s(self) -> float:
        """Seconds left: remaining estimates scaled by the run's actual/estimated pace."""
        remaining = sum(self._estimates[self._done :]) + self._extra_s
        elapsed = time.monotonic() - self._started
        pace = elapsed / self._done_estimated_s if self._done_estimated_s > 0 else 1.0
        return remaining * min(max(pace, 0.5), 3.0)

    def start_trial(self, trial: Trial) -> None:
        description = (
            f"{trial.scenario} · {trial.backend} · {trial.cell} · rep {trial.repetition + 1}"
        )
        self._progress.update(self._task, description=description, left=_fmt_s(self.time_left_s()))

    def end_trial(self, trial: Trial, status: str, summary: str) -> None:
        self._done_estimated_s += self._estimates[self._done] if self._done < self._total else 0
        self._done += 1
        self._progress.update(self._task, advance=1, left=_fmt_s(self.time_left_s()))
        if not self._live:
            left = _fmt_s(self.time_left_s())
            print(
                f"[{self._done}/{self._total}] {trial.scenario} {trial.backend} {trial.cell} "
                f"rep {trial.repetition + 1}: {status} {summary} (left ~{left})",
                file=sys.stderr,
                flush=True,
            )

    def note(self, message: str) -> None:
        """A line above the bar (phase changes such as micro benchmarks, analysis)."""
        if self._live:
            self._progress.console.print(message)
        else:
            print(message, file=sys.stderr, flush=True)
