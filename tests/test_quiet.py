"""The quiet-machine rule: busy CPUs and steal decide, the load average is only recorded."""

from __future__ import annotations

import pytest

from bench.measure.machine import quiet
from bench.measure.machine.quiet import Quietness


@pytest.mark.parametrize(
    ("busy", "steal", "expected"),
    [(0.10, 0.0, True), (0.50, 0.05, True), (0.51, 0.0, False), (0.1, 0.06, False)],
)
def test_the_rule_uses_busy_share_and_steal(busy: float, steal: float, expected: bool) -> None:
    sample = Quietness(busy_per_cpu=busy, steal_fraction=steal, load_1min=9.0, cpus=2)
    assert sample.quiet is expected
    assert "quiet means" in sample.describe()


def test_waiting_stops_when_the_machine_becomes_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    samples = iter([Quietness(0.9, 0.0, 2.0, 2), Quietness(0.2, 0.0, 2.0, 2)])
    monkeypatch.setattr(quiet, "measure_quietness", lambda *_: next(samples))
    monkeypatch.setattr(quiet, "POLL_S", 0.0)
    notes: list[str] = []
    sample, _ = quiet.wait_for_quiet(30.0, notes.append)
    assert sample.quiet and len(notes) == 1


def test_waiting_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quiet, "measure_quietness", lambda *_: Quietness(0.9, 0.0, 2.0, 2))
    monkeypatch.setattr(quiet, "POLL_S", 0.01)
    sample, waited = quiet.wait_for_quiet(0.05)
    assert not sample.quiet and waited >= 0.05


def test_a_real_sample_reads_proc_stat() -> None:
    sample = quiet.measure_quietness(sample_s=0.05)
    assert sample.busy_per_cpu is not None and 0.0 <= sample.busy_per_cpu <= 1.0
    assert sample.steal_fraction is not None and sample.cpus >= 1
