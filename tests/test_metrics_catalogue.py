"""The metric catalogue (bench.metrics): declared once, read by the table, and nowhere respelled."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from bench import metrics
from bench.analyse import compare
from bench.measure import record as record_module
from bench.present import chart_catalogue
from bench.store import schema
from bench.tables import COMMON_COLUMNS

REPO = Path(__file__).resolve().parent.parent

# Where a built-in metric's name may still be written out in bench/: documents other
# than the trial table that happen to use the same word for their own key.
OTHER_DOCUMENTS = {
    ("bench/measure/columns.py", "loadgen_saturated"),  # the flag reason's text
    ("bench/measure/drivers.py", "connect_errors"),  # the probe's raw document
    ("bench/measure/machine/quiet.py", "steal_fraction"),  # the quiet check's report
    ("bench/measure/wrk.py", "requests"),  # the JSON wrk's Lua script prints
    ("bench/measure/wrk.py", "errors"),
    ("bench/measure/wrk.py", "latency_p50_us"),
    ("bench/measure/wrk.py", "latency_p99_us"),
    ("bench/measure/wrk.py", "latency_max_us"),
}


def _resolve(dotted: str) -> object:
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


@pytest.mark.parametrize("metric", metrics.BUILTIN, ids=lambda m: m.name)
def test_a_builtin_metric_is_a_trial_column_of_its_dtype(metric: metrics.Metric) -> None:
    assert schema.TRIAL_COLUMNS[metric.name] == metric.dtype


@pytest.mark.parametrize("metric", metrics.BUILTIN, ids=lambda m: m.name)
def test_where_a_builtin_metric_is_computed_names_a_function(metric: metrics.Metric) -> None:
    for where in metric.computed_by:
        assert callable(_resolve(where)), where


def test_the_table_measures_nothing_the_catalogue_lacks() -> None:
    # Every float column of the common table is a measurement, so each is declared.
    floats = {n for n, dtype in COMMON_COLUMNS.items() if dtype == "float64"}
    assert floats - set(metrics.names()) == {"rate_rps_requested"}


def test_compare_and_the_charts_read_their_metrics_from_the_catalogue() -> None:
    builtin_compared = tuple(m.name for m in metrics.BUILTIN if m.compared)
    assert builtin_compared == compare.COMPARED_METRICS
    tables = [c.table.metric for c in chart_catalogue.CATALOGUE if c.table is not None]
    assert tables and set(tables) <= set(metrics.names())


def test_no_builtin_metric_name_is_spelled_outside_the_catalogue() -> None:
    names = sorted((m.name for m in metrics.BUILTIN), key=len, reverse=True)
    quoted = re.compile("[\"'](" + "|".join(names) + ")[\"']")
    found = set()
    for path in sorted((REPO / "bench").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel == "bench/metrics.py":
            continue
        found |= {(rel, name) for name in quoted.findall(path.read_text())}
    assert found - OTHER_DOCUMENTS == set()


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"name": "Bad Name"}, "lower case"),
        ({"dtype": "int64"}, "not one of"),
        ({"better": "lower"}, "Better.LOWER"),
        ({"unit": " "}, "unit"),
        ({"compute": None}, "computed_by"),
    ],
)
def test_a_bad_declaration_is_refused_with_its_remedy(changes: dict, words: str) -> None:
    fields = {
        "name": "toy_metric", "unit": "count", "dtype": "Int64", "better": None,
        "description": "a toy", "compute": lambda rec: 1,
    }  # fmt: skip
    with pytest.raises(ValueError, match=words):
        metrics.Metric(**{**fields, **changes})


def test_a_plugin_metric_gets_its_place_from_its_function() -> None:
    def per_toy(rec: object) -> int:
        return 1

    metric = metrics.Metric("toy_metric", "count", "Int64", None, "a toy", compute=per_toy)
    assert metric.computed_by == (f"{__name__}.{per_toy.__qualname__}",)


def test_register_refuses_a_builtin_name_and_a_second_declaration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics, "_PLUGINS", {})
    with pytest.raises(ValueError, match="built in"):
        metrics.register(
            metrics.Metric(
                metrics.THROUGHPUT_RPS.name, "req/s", "float64", None, "again", compute=len
            )
        )
    with pytest.raises(ValueError, match="needs compute"):
        metrics.register(metrics.THROUGHPUT_RPS)
    first = metrics.Metric("toy_metric", "count", "Int64", None, "a toy", compute=len)
    assert metrics.register(first) is first
    metrics.register(first)  # the same declaration again (a module imported twice)
    with pytest.raises(ValueError, match="already registered"):
        metrics.register(metrics.Metric("toy_metric", "s", "float64", None, "other", compute=len))
    assert metrics.registered() == (first,)


def test_a_raising_metric_function_names_the_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(rec: object) -> float:
        raise ZeroDivisionError("no wait calls")

    monkeypatch.setattr(metrics, "_PLUGINS", {})
    metrics.register(metrics.Metric("toy_ratio", "ratio", "float64", None, "x", compute=broken))
    rec = record_module.TrialRecord(None, None, None, None, {})  # type: ignore[arg-type]
    with pytest.raises(record_module.MetricError, match=r"'toy_ratio'.*ZeroDivisionError"):
        record_module.metric_columns(rec)
