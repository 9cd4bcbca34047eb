"""The verdict per family of backends on SYNTHETIC data: agreeing, disagreeing, the headline."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from fixtures.synthetic_run import SyntheticSpec, make_synthetic_run, synthetic_run_in_memory

from bench.analyse.families import (
    agreement_sentence,
    family_rows,
    judged_families,
    overall_status,
    roles_of,
)
from bench.analyse.rules import RULES
from bench.analyse.verdict import compute_verdict
from bench.present.report import render_report
from bench.present.verdict_table import format_verdict_table
from bench.store.results import RunData
from servers import registry

PY = registry.FAMILY_PYTHON_LOOP
C = registry.FAMILY_C
C_BACKENDS = ("c-select", "c-poll", "c-epoll")
QUIET = {"noise": 0.01, "repetitions": 5, "include_micro": False}
GROWS_HALF = 0.5 / 4000  # +50% over 0-4000 descriptors for a 1 us wait call
NEW_KEYS = ("headline_family", "headline_status", "family_agreement", "families", "overall_rules")
# Claim 1's findings across families (RULES["claim1_limit_location"]), in no family's block.
ACROSS_FAMILIES = ("limit_location", "select_error")


def _concat(*runs: RunData) -> RunData:
    """One run holding every run's trials (the first run's micro benchmarks)."""
    return replace(runs[0], trials=pd.concat([r.trials for r in runs], ignore_index=True))


def _claims(run: RunData) -> dict[str, dict]:
    return {c["id"]: c for c in compute_verdict(run)["claims"]}


@pytest.fixture(scope="module")
def python_only() -> RunData:
    return synthetic_run_in_memory(SyntheticSpec())


@pytest.fixture(scope="module")
def c_only() -> RunData:
    return synthetic_run_in_memory(SyntheticSpec(backends=C_BACKENDS, include_micro=False, seed=21))


def test_roles_are_found_by_family_and_mechanism_not_by_name() -> None:
    py, c = roles_of(PY), roles_of(C)
    assert (py.subject, py.comparators, py.edge) == ("epoll", ("select", "poll"), "epoll-et")
    assert (c.subject, c.comparators, c.edge) == ("c-epoll", ("c-select", "c-poll"), "c-epoll-et")
    assert roles_of(registry.FAMILY_PYTHON_REFERENCE).subject is None


def test_the_python_family_alone_reads_exactly_as_before(python_only: RunData) -> None:
    verdict = compute_verdict(python_only)
    assert [r.family for r in judged_families(python_only.trials)] == [PY]
    for claim in verdict["claims"]:
        assert claim["status"] == claim["headline_status"]
        assert list(claim["families"]) == [PY]
        block = claim["families"][PY]
        for key, value in claim.items():
            if key not in (*NEW_KEYS, *ACROSS_FAMILIES, "id", "claim"):
                assert block[key] == value, key
        assert claim["family_agreement"].startswith(
            f"Python only (no other family measured): {claim['status']}"
        )
    edge = verdict["edge_vs_level"]
    assert edge["status"] == "INCONCLUSIVE" and edge["families"] == {}
    assert "no family had both" in edge["family_agreement"]


def test_other_families_data_change_nothing_in_the_python_block(
    python_only: RunData, c_only: RunData
) -> None:
    alone = _claims(python_only)
    both = _claims(_concat(python_only, c_only))
    for cid, before in alone.items():
        after = both[cid]
        assert after["headline_status"] == before["status"]
        assert list(after["families"]) == [PY, C]
        for key, value in before.items():
            if key not in (*NEW_KEYS, "status"):
                assert after[key] == value, (cid, key)
    # The C family is judged on its own backends only.
    c1 = both["1"]["families"][C]
    assert set(c1["evidence"]["backends"]) == set(C_BACKENDS)
    assert "c-select served" in c1["reason"]


def test_two_families_that_agree_say_so() -> None:
    # The Python family's claim 3 needs its in-process primary metric too (micro benchmarks).
    py = synthetic_run_in_memory(SyntheticSpec(**{**QUIET, "include_micro": True}))
    c = synthetic_run_in_memory(SyntheticSpec(**QUIET, backends=C_BACKENDS, seed=21))
    claims = _claims(_concat(py, c))
    for cid in ("1", "3"):
        assert claims[cid]["status"] == "SUPPORTED"
        assert claims[cid]["family_agreement"] == "Python and C agree: SUPPORTED"
    assert claims["2"]["status"] == "PARTLY SUPPORTED"
    assert claims["2"]["family_agreement"] == (
        "Python and C agree: PARTLY SUPPORTED (idle-heavy SUPPORTED, all-active NOT SUPPORTED)"
    )
    c2 = claims["2"]["families"][C]
    assert c2["roles"]["subject"] == "c-epoll"
    assert "c-epoll vs c-select" in c2["reason"]


def test_c_epoll_flat_while_python_epoll_grows_is_a_split_named_in_the_sentence() -> None:
    spec = SyntheticSpec(
        backends=("select", "poll", "epoll", *C_BACKENDS),
        backend_slopes=(("epoll", GROWS_HALF),),
    )
    run = synthetic_run_in_memory(spec)
    claim3 = _claims(run)["3"]
    assert claim3["families"][PY]["status"] == "NOT SUPPORTED"
    assert claim3["families"][C]["status"] == "SUPPORTED"
    assert claim3["status"] == "PARTLY SUPPORTED"
    assert claim3["headline_status"] == "NOT SUPPORTED"
    sentence = claim3["family_agreement"]
    assert sentence.startswith("The families differ: Python: NOT SUPPORTED (")
    assert "; C: SUPPORTED (" in sentence and "growing" in sentence
    assert "epoll grows" in claim3["reason"]  # the headline's own reason, as before
    assert "c-epoll flat" in claim3["families"][C]["reason"]


@pytest.fixture
def external_family(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, ...]]:
    """The external family's select, poll and epoll backends (registered for this test if the
    checkout has none yet)."""
    roles = roles_of(registry.FAMILY_EXTERNAL)
    if roles.subject is not None and len(roles.comparators) == 2:
        yield (*roles.comparators, roles.subject)
        return
    names = ("x-select", "x-poll", "x-epoll")
    for name in names:
        backend = registry.Backend(
            name=name, family=registry.FAMILY_EXTERNAL, mechanism=name[2:],
            wait_instrumented=False, fd_number_limit=None, colour="#444444",
            factory="nowhere:make",
        )  # fmt: skip
        monkeypatch.setitem(registry._REGISTRY, name, backend)
    yield names


def test_an_inconclusive_family_neither_confirms_nor_breaks_agreement(
    external_family: tuple[str, ...],
) -> None:
    spec = SyntheticSpec(
        **QUIET, backends=("select", "poll", "epoll", *C_BACKENDS, *external_family)
    )
    run = synthetic_run_in_memory(spec)
    trials = run.trials
    # The external servers ran no fd-limit and no all-active trial.
    gone = trials["backend"].isin(external_family) & trials["scenario"].isin(
        ["fd-limit", "active-scaling"]
    )
    claims = _claims(replace(run, trials=trials[~gone]))
    assert [f["label"] for f in claims["1"]["families"].values()] == ["Python", "C", "HAProxy"]
    assert claims["1"]["status"] == "SUPPORTED"
    assert claims["1"]["family_agreement"] == (
        "Python and C agree: SUPPORTED; HAProxy: INCONCLUSIVE "
        f"(no usable fd-limit trial of the {external_family[0]} backend)"
    )
    assert claims["2"]["families"][registry.FAMILY_EXTERNAL]["status"] == "PARTLY SUPPORTED"
    assert (
        "HAProxy: PARTLY SUPPORTED (idle-heavy SUPPORTED, no judged all-active cells)"
        in (claims["2"]["family_agreement"])
    )


def test_the_overall_rule_is_symmetric_and_written_down() -> None:
    cases = [
        (["SUPPORTED"], "SUPPORTED"),
        (["INCONCLUSIVE"], "INCONCLUSIVE"),
        (["SUPPORTED", "SUPPORTED", "INCONCLUSIVE"], "SUPPORTED"),
        (["SUPPORTED", "NOT SUPPORTED"], "PARTLY SUPPORTED"),
        (["PARTLY SUPPORTED", "PARTLY SUPPORTED"], "PARTLY SUPPORTED"),
        (["NOT SUPPORTED", "INCONCLUSIVE"], "NOT SUPPORTED"),
        (["INCONCLUSIVE", "INCONCLUSIVE"], "INCONCLUSIVE"),
    ]
    for statuses, expected in cases:
        assert overall_status(statuses) == expected
        assert overall_status(list(reversed(statuses))) == expected
    one = agreement_sentence([("Python", "SUPPORTED", "n"), ("C", "NOT SUPPORTED", "m")])
    other = agreement_sentence([("C", "NOT SUPPORTED", "m"), ("Python", "SUPPORTED", "n")])
    assert one == "The families differ: Python: SUPPORTED (n); C: NOT SUPPORTED (m)"
    assert other == "The families differ: C: NOT SUPPORTED (m); Python: SUPPORTED (n)"
    for name in ("families", "family_overall"):
        assert name in RULES


def test_reference_points_and_unknown_backends_are_shown_with_the_python_family(
    python_only: RunData, c_only: RunData
) -> None:
    run = _concat(python_only, c_only)
    extra = python_only.trials.head(4).assign(backend=["asyncio", "asyncio", "mystery", "mystery"])
    trials = pd.concat([run.trials, extra], ignore_index=True)
    judged = [r.family for r in judged_families(trials)]
    assert judged == [PY, C]
    py_rows = family_rows(trials, roles_of(PY), judged)
    assert {"asyncio", "mystery", "epoll"} <= set(py_rows["backend"])
    assert not set(py_rows["backend"]) & set(C_BACKENDS)


@pytest.mark.slow  # a synthetic run, its verdict and report: seconds
def test_report_and_table_show_every_family_and_the_rules(tmp_path: Path) -> None:
    spec = SyntheticSpec(
        repetitions=2, idle_levels=(0, 500, 1000, 2000), active_levels=(8, 256),
        backends=("select", "poll", "epoll", "epoll-et", *C_BACKENDS, "c-epoll-et"),
    )  # fmt: skip
    run = make_synthetic_run(tmp_path, spec)
    verdict = compute_verdict(run)
    report = render_report(run, verdict)
    section = report.split("## Verdict", 1)[1].split("## Charts", 1)[0]
    assert "### By family" in section
    assert "| overall | Python | C |" in section
    assert "#### C family (c-epoll against c-select and c-poll)" in section
    assert "### Edge-triggered vs level-triggered epoll" in section
    assert "#### C: c-epoll-et vs c-epoll" in section and "| c-epoll-et vs |" in section
    for text in RULES.values():
        assert text in report
    table = format_verdict_table(verdict, width=160)
    assert "2, C" in table and "edge-triggered vs level-triggered epoll" in table


def test_a_verdict_written_before_families_still_renders(python_only: RunData) -> None:
    from bench.present.verdict_md import verdict_section

    verdict = compute_verdict(python_only)
    verdict.pop("edge_vs_level")
    for claim in verdict["claims"]:
        for key in NEW_KEYS:
            claim.pop(key)
    text = "\n".join(verdict_section(verdict))
    assert "### Claim 3" in text and "### By family" not in text
    assert "Edge-triggered" not in text


def test_a_family_that_does_not_time_its_wait_call_is_inconclusive_on_claim_3(
    external_family: tuple[str, ...],
) -> None:
    spec = SyntheticSpec(**QUIET, backends=("select", "poll", "epoll", *external_family))
    claim3 = _claims(synthetic_run_in_memory(spec))["3"]
    block = claim3["families"][registry.FAMILY_EXTERNAL]
    assert block["status"] == "INCONCLUSIVE"
    assert "do not time their wait call, so it has no in-server primary metric" in block["shown"]
    # Its secondary metrics are still shown (epoll flat, select and poll growing here).
    secondary = {m["metric"]: m for m in block["evidence"]["metrics"] if m["role"] == "secondary"}
    assert secondary["server CPU per request"]["status"] == "SUPPORTED"
