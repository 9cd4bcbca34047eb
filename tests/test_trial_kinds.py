"""Modes and trial statuses are declared once (bench.measure.trial) and write the same text."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from bench.measure.trial import Cell, Sweep
from bench.store import schema
from bench.store.results import coerce_table
from bench.tables import Mode, TrialStatus

REPO = Path(__file__).resolve().parent.parent
# Where these words still appear in bench/ meaning something else.
OTHER_MEANINGS = {
    ("bench/measure/probe.py", "ok"),  # what one probed client saw (its observation)
    ("bench/measure/machine/doctor.py", "ok"),  # a machine check's severity
    ("bench/measure/placement/cluster_doctor.py", "ok"),
    ("bench/store/schema.py", "failed"),  # a run's status (RUN_STATUSES), declared there
}


def test_a_mode_given_as_text_becomes_the_enum_and_a_typo_is_refused() -> None:
    cell = Cell("s", "closed", 0, 4, None)
    assert cell.mode is Mode.CLOSED
    assert Sweep("open", (0,)).mode is Mode.OPEN
    with pytest.raises(ValueError, match=r"unknown mode 'opn'.*open, closed, probe"):
        Cell("s", "opn", 0, 4, None)


def test_the_schema_statuses_are_the_enum() -> None:
    assert schema.TRIAL_STATUSES == ("ok", "failed")
    assert all(isinstance(s, TrialStatus) for s in schema.TRIAL_STATUSES)


def test_the_tables_and_json_hold_the_same_text_as_plain_strings() -> None:
    as_enum = [{"mode": Mode.CLOSED, "status": TrialStatus.OK}, {"mode": Mode.OPEN}]
    as_text = [{"mode": "closed", "status": "ok"}, {"mode": "open"}]
    a, b = (coerce_table(pd.DataFrame(rows), schema.TRIAL_COLUMNS) for rows in (as_enum, as_text))
    assert a.to_csv(index=False) == b.to_csv(index=False)
    pa, pb = io.BytesIO(), io.BytesIO()
    a.to_parquet(pa, index=False)
    b.to_parquet(pb, index=False)
    assert pa.getvalue() == pb.getvalue()
    assert json.dumps(as_enum) == json.dumps(as_text)


def test_no_mode_or_status_is_spelled_outside_its_declaration() -> None:
    words = re.compile(r"""(?:==|!=|\(|,|=|:)\s*["'](open|closed|probe|ok|failed)["']""")
    found = set()
    for path in sorted((REPO / "bench").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel == "bench/tables/__init__.py":
            continue
        found |= {(rel, w) for w in words.findall(path.read_text())}
    assert found - OTHER_MEANINGS == set()
