"""Claim 1 says where the 1024 lives (RULES["claim1_limit_location"]) and quotes select's own
error, from the run's fd-limit trials: on synthetic trial tables (tests/fixtures), with and
without a select backend past FD_SETSIZE (c-select-big), into verdict.json and report.md."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from fixtures.synthetic_run import (
    PYTHON_SELECT_REFUSAL,
    SyntheticSpec,
    synthetic_run_in_memory,
)

import servers.c_backends  # noqa: F401 -- registers the C backends
from bench import metrics
from bench.analyse.claim1 import claim1, is_unbounded_select
from bench.analyse.rules import RULES, SELECT_ERROR_COLUMN, SELECT_ERROR_NONE
from bench.analyse.verdict import compute_verdict, write_verdict
from bench.measure.scenarios import fd_limit
from bench.present.report import render_report
from bench.store import schema
from bench.store.results import RunData, coerce_table
from bench.tables import Mode, TrialStatus
from servers import registry

PY_AND_C = ("select", "poll", "epoll", "c-select", "c-poll", "c-epoll")
NOFILE = 20000


def _run(backends: tuple[str, ...] = PY_AND_C, path: Path = Path("/nonexistent")) -> RunData:
    return synthetic_run_in_memory(
        SyntheticSpec(backends=backends, include_micro=False, seed=3), path=path
    )


def _with_big_select(run: RunData, served: int, requested: int = 2000) -> RunData:
    """The run plus one fd-limit trial of c-select-big that served ``served`` at once (a
    probe trial is recorded in closed mode, bench.measure.columns)."""
    row = {
        "scenario": fd_limit.NAME, "backend": "c-select-big", "protocol": "echo",
        "mode": Mode.CLOSED.value, "idle_connections": 0, "active_connections": 0,
        "repetition": 0, "status": TrialStatus.OK.value, "flagged": False,
        "connections_requested": requested, metrics.CONNECTIONS_ESTABLISHED.name: requested,
        metrics.CONNECTIONS_SERVED.name: served, metrics.CONNECTIONS_REJECTED.name: 0,
        metrics.SERVER_REJECTED_FD_SETSIZE.name: 0, metrics.SERVER_FD_NUMBER_LIMIT.name: NOFILE,
        metrics.CLIENT_OBSERVATION.name: json.dumps({"ok": served}),
        "order_index": len(run.trials) + 1,
    }  # fmt: skip
    trials = pd.concat([run.trials, pd.DataFrame([row])], ignore_index=True)
    return replace(run, trials=coerce_table(trials, schema.TRIAL_COLUMNS))


def _claim1(run: RunData) -> dict:
    """Claim 1 as compute_verdict builds it (which the last test goes through)."""
    return claim1(run)


def test_c_select_big_is_the_only_registered_select_past_fd_setsize() -> None:
    unbounded = [b.name for b in registry.all_backends() if is_unbounded_select(b.name)]
    assert unbounded == ["c-select-big"]
    assert not is_unbounded_select("c-select") and not is_unbounded_select("poll")


def test_served_past_fd_setsize_names_glibc_and_cpython_not_the_kernel() -> None:
    c1 = _claim1(_with_big_select(_run(), served=2000))
    where = c1["limit_location"]
    assert where["shown"] is True and where["backend"] == "c-select-big"
    assert where["served"] == 2000 and where["rule"] == "claim1_limit_location"
    sentence = where["sentence"]
    assert "c-select-big served 2000 connections at once (of 2000 offered)" in sentence
    assert f"RLIMIT_NOFILE ({NOFILE})" in sentence
    assert "not the kernel's" in sentence and "glibc's fd_set" in sentence
    assert "CPython's check in select.select" in sentence
    # CPython's own words, from the select server's trials.
    assert PYTHON_SELECT_REFUSAL in sentence
    c_block = c1["families"][registry.FAMILY_C]
    assert c_block["evidence"]["past_fd_setsize"]["c-select-big"] == {
        "max_connections_served": 2000.0,
        "max_connections_requested": 2000.0,
        "server_fd_number_limit": NOFILE,
    }


def test_the_status_is_c_selects_whatever_c_select_big_served() -> None:
    """c-select-big says where the wall is; it is not the family's select."""
    base = _claim1(_run())
    for served in (2000, 900):
        c1 = _claim1(_with_big_select(_run(), served=served))
        assert c1["status"] == base["status"]
        for family, block in c1["families"].items():
            assert block["status"] == base["families"][family]["status"], family
            assert block["roles"] == base["families"][family]["roles"], family


@pytest.mark.parametrize("served", [None, 1024, 900])
def test_not_shown_names_no_place(served: int | None) -> None:
    """Not measured, or not past FD_SETSIZE: the sentence claims nothing about the kernel."""
    run = _run() if served is None else _with_big_select(_run(), served=served)
    where = _claim1(run)["limit_location"]
    assert where["shown"] is False and where["backend"] is None
    sentence = where["sentence"]
    assert sentence.startswith("not shown by this run")
    for place in ("kernel", "glibc", "CPython"):
        assert place not in sentence, place
    if served is None:
        assert "none was measured" in sentence and "c-select-big" not in sentence
    else:
        assert f"c-select-big served {served}/2000" in sentence


def test_select_error_is_quoted_per_family_and_for_the_claim() -> None:
    c1 = _claim1(_run())
    assert c1["select_error"]["error"] == PYTHON_SELECT_REFUSAL
    assert c1["select_error"]["backend"] == "select"
    assert c1["select_error"]["sentence"].startswith(PYTHON_SELECT_REFUSAL)
    families = c1["families"]
    assert families[registry.FAMILY_PYTHON_LOOP]["evidence"]["select_error"] == {
        "backend": "select",
        "error": PYTHON_SELECT_REFUSAL,
    }
    # c-select records no error: its fd_set refuses the number before select sees it.
    assert families[registry.FAMILY_C]["evidence"]["select_error"] is None


def test_no_recorded_error_says_so() -> None:
    run = _run()
    trials = run.trials.assign(**{SELECT_ERROR_COLUMN: pd.NA})
    c1 = _claim1(replace(run, trials=coerce_table(trials, schema.TRIAL_COLUMNS)))
    assert c1["select_error"] == {"backend": None, "error": None, "sentence": SELECT_ERROR_NONE}
    assert "ValueError" not in c1["limit_location"]["sentence"]


def test_verdict_json_and_report_md_carry_both(tmp_path: Path) -> None:
    # Few cells: claims 2 and 3 are computed too, and only claim 1 is looked at.
    small = SyntheticSpec(
        backends=PY_AND_C, include_micro=False, idle_levels=(0, 1000), active_levels=(8,)
    )
    run = _with_big_select(synthetic_run_in_memory(small, path=tmp_path), served=2000)
    verdict = compute_verdict(run)
    doc = json.loads(write_verdict(run, verdict).read_text())
    c1 = doc["claims"][0]
    assert c1["select_error"]["error"] == PYTHON_SELECT_REFUSAL
    assert c1["evidence"]["select_error"]["error"] == PYTHON_SELECT_REFUSAL
    assert c1["limit_location"]["shown"] is True
    assert doc["method"]["rules"]["claim1_limit_location"] == RULES["claim1_limit_location"]
    report = render_report(run, doc)
    assert f"- **Where the 1024 lives:** {c1['limit_location']['sentence']}" in report
    assert f"- **select's own error:** {PYTHON_SELECT_REFUSAL}" in report
