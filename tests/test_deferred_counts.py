"""A worker keeps its latencies as counts during the load and records them afterwards: the
histograms come out as if each tick had recorded its own (loadgen.histogram.DeferredCounts)."""

from __future__ import annotations

from collections import Counter

from hdrh.histogram import HdrHistogram

from loadgen import histogram as hdr

# Interval 0 flushed twice (a tick, then a stop mid-interval), interval 1 once; one value
# under 1 us and one over 60 s, which are clamped and counted.
FLUSHES = [
    (0, Counter({50: 3, 70: 1}), Counter({49: 3, 69: 1})),
    (1, Counter({60: 2, 0: 1, 61_000_000: 1}), Counter({60: 2, 0: 1, 61_000_000: 1})),
    (0, Counter({900: 2}), Counter({880: 2})),
]
LAGS = [Counter({0: 5, 3: 1}), Counter({250: 1})]


def _recorded_at_each_flush() -> tuple[int, dict[str, HdrHistogram], dict[int, Counter]]:
    """What per-tick recording gives: every value into the run's histograms at once."""
    hists = {"c": hdr.new_histogram(), "u": hdr.new_histogram(), "lag": hdr.new_histogram()}
    clamped, per_label = 0, {}
    for label, c, u in FLUSHES:
        clamped += hdr.record_counts((hists["c"],), c)
        hdr.record_counts((hists["u"],), u)
        per_label.setdefault(label, Counter()).update(c)
    for lag in LAGS:
        hdr.record_counts((hists["lag"],), lag, lowest_us=0)
    return clamped, hists, per_label


def _values(hist: HdrHistogram) -> Counter:
    return Counter(
        {v.value_iterated_to: v.count_at_value_iterated_to for v in hist.get_recorded_iterator()}
    )


def test_recording_after_the_load_gives_the_histograms_recording_at_each_tick_gave() -> None:
    deferred = hdr.DeferredCounts()
    for label, c, u in FLUSHES:
        deferred.add(label, c, u)
    for lag in LAGS:
        deferred.add_lag(lag)
    c, u, lag = hdr.new_histogram(), hdr.new_histogram(), hdr.new_histogram()
    clamped, series = deferred.record(c, u, lag)

    want_clamped, want, per_label = _recorded_at_each_flush()
    assert clamped == want_clamped == 2
    assert _values(c) == _values(want["c"]) and c.get_total_count() == 10
    assert _values(u) == _values(want["u"])
    assert _values(lag) == _values(want["lag"]) and _values(lag)[0] == 5
    assert hdr.summary_us(c) == hdr.summary_us(want["c"])
    # Each interval's own histogram holds all of that interval, both flushes of interval 0.
    assert sorted(series) == [0, 1]
    assert hdr.decode(series[0]).get_total_count() == sum(per_label[0].values()) == 6
    assert hdr.decode(series[1]).get_total_count() == 4


def test_the_closed_loop_keeps_no_uncorrected_histogram_and_a_record_is_not_repeated() -> None:
    deferred = hdr.DeferredCounts()
    deferred.add(0, Counter({40: 2}), Counter({40: 2}))
    c, lag = hdr.new_histogram(), hdr.new_histogram()
    assert deferred.record(c, None, lag)[0] == 0
    assert c.get_total_count() == 2 and lag.get_total_count() == 0
    # Recorded once: a second record (a report built twice) adds nothing.
    assert deferred.record(c, None, lag) == (0, {})
    assert c.get_total_count() == 2
