"""HdrHistogram helpers: one range and precision everywhere, batch recording, merging.

Latencies are recorded in microseconds from 1 us to 60 s with 3 significant
digits. Workers collect raw nanosecond deltas in a list (one list.append per
request; the compiled core, loadgen._cload, in a C array) and record them in
batches: a Counter (the core: a sort) reduces a second's worth of values to
(value, count) pairs, so the pure-Python record_value runs once per
distinct value, not once per request (measured ~5x faster than recording each
value; numpy was no faster and costs ~170 ms of import per worker).
Histograms cross process boundaries only as HdrHistogram's own compressed base64
encoding and are merged with ``add``; percentiles are never
averaged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 60_000_000
SIGNIFICANT_DIGITS = 3
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99_9": 99.9}


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def us_counts(values_ns: Sequence[int]) -> Counter[int]:
    """{microseconds: count} of nanosecond values (floor division), the form recorded."""
    return Counter([v // 1000 for v in values_ns])


def record_counts(
    histograms: Sequence[HdrHistogram], counts: Mapping[int, int], lowest_us: int = LOWEST_US
) -> int:
    """Record {microseconds: count} into every histogram given.

    Returns how many values were clamped into [lowest_us, HIGHEST_US].
    lowest_us=0 keeps sub-microsecond values as 0 (send lag: on time is 0).
    """
    clamped = 0
    pairs = []
    for value, count in counts.items():
        if value < lowest_us or value > HIGHEST_US:
            clamped += count
            value = lowest_us if value < lowest_us else HIGHEST_US
        pairs.append((value, count))
    for hist in histograms:
        record = hist.record_value
        for value, count in pairs:
            record(value, count)
    return clamped


def record_ns(
    histograms: Sequence[HdrHistogram], values_ns: Sequence[int], lowest_us: int = LOWEST_US
) -> int:
    """Record nanosecond values (as microseconds) into every histogram given; see
    record_counts."""
    if not values_ns:
        return 0
    return record_counts(histograms, us_counts(values_ns), lowest_us)


class DeferredCounts:
    """A worker's latencies as {us: count} per time-series interval until the load is over,
    then recorded into its HdrHistograms (``record``).

    Recording and encoding at each tick cost 0.75 ms at 100 answers per interval and 2.4 ms
    at 1,000 (pure-Python record_value; measured 2026-12-06), and the ticks fall inside the
    window: the open loop's sends due meanwhile went out that late (a debug build logged
    send lags of 0.35-1.9 ms at the ticks), and answers read meanwhile were timed late.
    A tick only keeps the counts it took (no merging, nothing per value); the histograms
    are the same, recorded afterwards.
    """

    def __init__(self) -> None:
        self.by_label: dict[int, list[tuple[Mapping[int, int], Mapping[int, int]]]] = {}
        self.lags: list[Mapping[int, int]] = []

    def add(self, label: int, corrected: Mapping[int, int], uncorrected: Mapping[int, int]) -> None:
        self.by_label.setdefault(label, []).append((corrected, uncorrected))

    def add_lag(self, lag: Mapping[int, int]) -> None:
        self.lags.append(lag)

    def record(
        self, corrected: HdrHistogram, uncorrected: HdrHistogram | None, lag: HdrHistogram
    ) -> tuple[int, dict[int, str]]:
        """Record everything added so far (then forget it): (values clamped, each interval's
        own corrected histogram, encoded). ``uncorrected`` None: not kept (closed loop)."""
        for counts in self.lags:
            record_counts((lag,), counts, lowest_us=0)
        clamped, encoded = 0, {}
        for label, parts in sorted(self.by_label.items()):
            per_interval = new_histogram()
            for c, u in parts:
                clamped += record_counts((corrected, per_interval), c)
                if uncorrected is not None:
                    record_counts((uncorrected,), u)
            encoded[label] = encode(per_interval)
        self.by_label.clear()
        self.lags.clear()
        return clamped, encoded


def encode(hist: HdrHistogram) -> str:
    return hist.encode().decode("ascii")


def decode(blob: str) -> HdrHistogram:
    return HdrHistogram.decode(blob.encode("ascii"))


def merge(blobs: Iterable[str]) -> HdrHistogram:
    """Decode and add encoded histograms into one fresh histogram."""
    merged = new_histogram()
    for blob in blobs:
        merged.add(decode(blob))
    return merged


def summary_us(hist: HdrHistogram) -> dict[str, float | int | None]:
    """p50, p90, p99, p99_9, max and mean in microseconds (None when empty)."""
    if hist.get_total_count() == 0:
        return {**dict.fromkeys(PERCENTILES), "max": None, "mean": None, "count": 0}
    out: dict[str, float | int | None] = {
        name: int(hist.get_value_at_percentile(pct)) for name, pct in PERCENTILES.items()
    }
    out["max"] = int(hist.get_max_value())
    out["mean"] = round(mean_value(hist), 3)
    out["count"] = int(hist.get_total_count())
    return out


def mean_value(hist: HdrHistogram) -> float:
    """hdrh's get_mean_value, visiting only the indexes that hold counts.

    hdrh walks every index up to the largest value in Python: 22.7 ms a histogram (234
    histograms of a default run, 2026-12-06), twice per trial in the parent. The sum is the
    same: each recorded index counts at the median of its equivalent range, as hdrh's
    recorded-values iterator reports it (tests/test_histogram_mean.py).
    """
    total_count = hist.get_total_count()
    if not total_count:
        return 0.0
    total = 0
    for index, count in enumerate(hist.counts):
        if count:
            top = hist.get_highest_equivalent_value(hist.get_value_from_index(index))
            low = hist.get_lowest_equivalent_value(top)
            total += count * (low + ((top + 1 - low) >> 1))  # the range's median
    return float(total) / total_count


def lag_summary_us(hist: HdrHistogram | None) -> dict[str, int | None]:
    """p50, p99 and max in microseconds, and the count (None values when empty)."""
    if hist is None or hist.get_total_count() == 0:
        return {"p50": None, "p99": None, "max": None, "count": 0}
    return {
        "p50": int(hist.get_value_at_percentile(50.0)),
        "p99": int(hist.get_value_at_percentile(99.0)),
        "max": int(hist.get_max_value()),
        "count": int(hist.get_total_count()),
    }
