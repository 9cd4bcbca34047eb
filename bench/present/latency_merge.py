"""A cell's latency percentiles from its repetitions' HdrHistograms merged, never averaged.

Each trial's raw document keeps the load generator's corrected HdrHistogram
(``schema.RAW_HISTOGRAM_KEY``). The percentiles of a cell are read from the sum of
its usable repetitions' histograms, as locust, wrk2 and HdrHistogram itself do; the
median of per-trial p99 values is not a p99 of anything. Each figure comes with the
number of samples it rests on (a p99 of 450 samples is the 5th largest value). The
per-trial percentiles stay in the trial table.
"""

from __future__ import annotations

import binascii
import json
import zlib
from collections.abc import Iterable
from typing import Any

import pandas as pd

from bench.store import schema
from bench.store.results import RunData


def _histogram_blob(raw: dict[str, Any]) -> str | None:
    """The load generator's merged, corrected HdrHistogram in a trial's raw document."""
    blob = (raw.get(schema.RAW_LOADGEN_KEY) or {}).get(schema.RAW_HISTOGRAM_KEY)
    return blob if isinstance(blob, str) and blob else None


def decode_histogram(blob: str) -> Any:
    from hdrh.histogram import HdrHistogram

    return HdrHistogram.decode(blob)


def trial_histogram(run: RunData, raw_file: Any) -> Any | None:
    """One trial's histogram from its raw file; None when the file or histogram is absent."""
    if raw_file is None or raw_file != raw_file:
        return None
    try:
        blob = _histogram_blob(json.loads((run.path / str(raw_file)).read_text()))
        return decode_histogram(blob) if blob else None
    except (OSError, json.JSONDecodeError, ValueError, TypeError, zlib.error, binascii.Error):
        return None


def merge(histograms: Iterable[Any]) -> Any | None:
    """The sum of the histograms (None when none has a sample); the first one given is
    added into, so pass histograms decoded for this purpose."""
    merged = None
    for hist in histograms:
        if hist is None or hist.get_total_count() == 0:
            continue
        if merged is None:
            merged = hist
        else:
            merged.add(hist)
    return merged


def merged_histogram(run: RunData, rows: pd.DataFrame) -> tuple[Any | None, int]:
    """The rows' histograms merged, and how many trials had one."""
    hists = [trial_histogram(run, rel) for rel in rows.get("raw_file", pd.Series(dtype=object))]
    found = [h for h in hists if h is not None]
    return merge(found), len(found)


def percentile_us(hist: Any, percentile: float) -> float:
    """A percentile of a histogram in microseconds (100: its largest value)."""
    unit = schema.RAW_HISTOGRAM_UNIT_US_PER_VALUE
    if percentile >= 100.0:
        return float(hist.get_max_value() * unit)
    return float(hist.get_value_at_percentile(percentile) * unit)


def cell_percentiles(
    run: RunData, rows: pd.DataFrame, keys: tuple[str, ...], percentiles: tuple[float, ...]
) -> pd.DataFrame:
    """Per cell (``keys``): each percentile of the merged histograms (``p50_us`` ...), the
    samples they rest on and the trials merged; cells without a histogram are left out."""
    cols = [*keys, *(f"p{p:g}_us" for p in percentiles), "samples", "trials_merged"]
    out = []
    if not rows.empty:
        for key, grp in rows.groupby(list(keys), sort=True):
            merged, n = merged_histogram(run, grp)
            if merged is None:
                continue
            cell = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
            values = {f"p{p:g}_us": percentile_us(merged, p) for p in percentiles}
            out.append({**cell, **values, "samples": int(merged.get_total_count()),
                        "trials_merged": n})  # fmt: skip
    return pd.DataFrame(out, columns=cols)
