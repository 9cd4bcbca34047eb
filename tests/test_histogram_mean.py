"""loadgen.histogram.mean_value is hdrh's get_mean_value, exactly, on any histogram."""

from __future__ import annotations

import random

import pytest

from loadgen import histogram as hdr


@pytest.mark.parametrize("seed", range(6))
def test_the_mean_over_recorded_indexes_equals_hdrhs(seed: int) -> None:
    rng = random.Random(seed)
    hist = hdr.new_histogram()
    for _ in range(rng.randrange(1, 3000)):
        # Microseconds from 0 to past the histogram's top, log-spread, some repeated.
        value = min(int(rng.lognormvariate(rng.uniform(0, 12), 1.5)), hdr.HIGHEST_US)
        hist.record_value(value, rng.choice((1, 1, 1, 7)))
    assert hdr.mean_value(hist) == hist.get_mean_value()


def test_edges_zero_one_value_and_the_top() -> None:
    hist = hdr.new_histogram()
    assert hdr.mean_value(hist) == hist.get_mean_value() == 0.0
    hist.record_value(0)
    assert hdr.mean_value(hist) == hist.get_mean_value()
    hist.record_value(hdr.HIGHEST_US, 3)
    assert hdr.mean_value(hist) == hist.get_mean_value()
