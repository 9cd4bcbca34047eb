"""verdict.json as a typed tree: written and read back through one class, versions checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.synthetic_run import SyntheticSpec, make_synthetic_run, synthetic_run_in_memory

from bench.analyse.verdict import compute_typed_verdict, compute_verdict, write_verdict
from bench.commands import main
from bench.store import schema
from bench.store.verdict_file import (
    VERDICT_SCHEMA_VERSION,
    Verdict,
    VerdictVersionError,
    read_verdict,
)

REPO = Path(__file__).resolve().parent.parent
VERDICT_V1 = Path(__file__).resolve().parent / "fixtures" / "verdict_v1.json"
# Every family with every role, micro benchmarks included: the fullest tree the fixture gives.
EVERY_BACKEND = ("select", "poll", "epoll", "epoll-et", "c-select", "c-poll", "c-epoll",
                 "c-epoll-et")  # fmt: skip


def _round_trip(verdict: Verdict) -> None:
    first = verdict.to_dict()
    again = Verdict.from_dict(json.loads(json.dumps(first))).to_dict()
    assert again == first


@pytest.mark.parametrize(
    "spec",
    [
        SyntheticSpec(backends=EVERY_BACKEND),
        SyntheticSpec(include_micro=False),
        SyntheticSpec(backends=("select", "epoll"), repetitions=1),
    ],
)
def test_a_computed_verdict_round_trips_through_json(spec: SyntheticSpec) -> None:
    verdict = compute_typed_verdict(synthetic_run_in_memory(spec))
    assert verdict.schema_version == VERDICT_SCHEMA_VERSION
    _round_trip(verdict)


@pytest.mark.slow  # about a second: the full suite runs it, the fast tier does not
def test_the_typed_tree_holds_what_the_analysis_computed() -> None:
    run = synthetic_run_in_memory(SyntheticSpec(backends=EVERY_BACKEND))
    raw = compute_verdict(run)
    typed = compute_typed_verdict(run)
    assert [c.id for c in typed.claims] == [c["id"] for c in raw["claims"]]
    c2 = typed.claim("2").families["c"]
    raw_c2 = raw["claims"][1]["families"]["c"]
    comp, raw_comp = (
        c2.evidence.regimes[0].comparisons[0],
        raw_c2["evidence"]["regimes"][0]["comparisons"][0],
    )
    assert comp.decision is not None
    assert comp.decision.ratio == raw_comp["decision"]["ratio"]
    assert comp.decision.method == raw_comp["decision"]["method"]
    m3 = typed.claim("3").families["python-event-loop"].evidence.metrics[0]
    raw_m3 = raw["claims"][2]["families"]["python-event-loop"]["evidence"]["metrics"][0]
    assert m3.backends is not None
    fit = m3.backends["epoll"]
    assert fit.class_ == raw_m3["backends"]["epoll"]["class"]
    assert fit.projected_rel_increase == raw_m3["backends"]["epoll"]["projected_rel_increase"]
    assert typed.sensitivity is not None and typed.sensitivity.sentence


@pytest.mark.slow  # a synthetic run, its verdict and report: seconds
def test_the_written_file_is_the_typed_form_and_reads_back(tmp_path: Path) -> None:
    run = make_synthetic_run(tmp_path, SyntheticSpec(include_micro=False))
    verdict = compute_typed_verdict(run)
    write_verdict(run, verdict)
    on_disk = json.loads((run.path / schema.VERDICT_JSON).read_text())
    assert on_disk == verdict.to_dict()
    assert on_disk["schema_version"] == VERDICT_SCHEMA_VERSION
    read = read_verdict(run.path)
    assert read is not None and read.to_dict() == on_disk


@pytest.mark.parametrize("version", [3, "2", None])
def test_an_unknown_version_is_refused_with_the_remedy(version: object) -> None:
    doc = compute_typed_verdict(synthetic_run_in_memory(SyntheticSpec(include_micro=False)))
    d = {**doc.to_dict(), "schema_version": version}
    with pytest.raises(VerdictVersionError, match=r"python -m bench report RUN"):
        Verdict.from_dict(d)


def test_a_version_1_file_is_refused_naming_cause_and_remedy() -> None:
    # A real verdict.json written before the typed verdict (docs/figures/ at commit c6ef6de).
    old = json.loads(VERDICT_V1.read_text())
    assert old.get("schema_version", 1) == 1
    with pytest.raises(VerdictVersionError, match=r"version 1 .*python -m bench report RUN"):
        Verdict.from_dict(old)
    del old["schema_version"]  # a file with no version at all is version 1 too
    with pytest.raises(VerdictVersionError, match=r"version 1"):
        Verdict.from_dict(old)


def test_commands_refuse_an_old_verdict_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_synthetic_run(tmp_path, SyntheticSpec(include_micro=False))
    old = json.loads(VERDICT_V1.read_text())
    (run.path / schema.VERDICT_JSON).write_text(json.dumps(old))
    assert main(["plot", str(run.path)]) == 2
    err = capsys.readouterr().err
    assert "python -m bench report RUN" in err and "Traceback" not in err
    assert main(["report", str(run.path)]) == 0  # the remedy rewrites it
    read = read_verdict(run.path)
    assert read is not None and read.schema_version == VERDICT_SCHEMA_VERSION
