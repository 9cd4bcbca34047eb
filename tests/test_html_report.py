"""report.html and the compare page from SYNTHETIC runs: what they show; that they fetch nothing.

No browser here (tests/test_html_browser.py opens a real run's page in Chromium);
the pages are parsed with the standard library's HTML parser.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fixtures.synthetic_run import SyntheticSpec, make_synthetic_run

from bench.analyse.compare import compare_runs
from bench.analyse.verdict import compute_typed_verdict, write_verdict
from bench.commands import main
from bench.present.chart_catalogue import CATALOGUE, draw_all
from bench.present.charts import latency_rows, merged_cells
from bench.present.html_compare import render_compare_page
from bench.present.html_report import render_html_report, write_html_report
from bench.store import schema
from bench.store.results import RunData, load
from bench.store.verdict_file import Verdict, read_verdict


class _Page(HTMLParser):
    """Every element's attributes, in order, and the text of the page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def with_attr(self, name: str) -> list[tuple[str, dict[str, str | None]]]:
        return [(t, a) for t, a in self.elements if name in a]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    spec = SyntheticSpec(repetitions=2, idle_levels=(0, 500, 1000, 2000), active_levels=(8, 256),
                         flag_every=9)  # fmt: skip
    data = make_synthetic_run(tmp_path_factory.mktemp("results"), spec)
    verdict = compute_typed_verdict(data)
    write_verdict(data, verdict)
    draw_all(data, verdict)
    return load(data.path)


@pytest.fixture(scope="module")
def verdict(run: RunData) -> Verdict:
    typed = read_verdict(run.path)
    assert typed is not None
    return typed


@pytest.fixture(scope="module")
def page(run: RunData, verdict: Verdict) -> str:
    return write_html_report(run, verdict).read_text()


def test_every_claim_family_and_regime_status_is_shown_in_its_colour(
    page: str, verdict: Verdict
) -> None:
    parsed = _Page(page)
    sections = {a["data-claim"] for _, a in parsed.with_attr("data-claim")}
    assert sections == {c.id for c in verdict.claims}
    shown = [a["data-status"] for _, a in parsed.with_attr("data-status")]
    badges = [a["class"] for _, a in parsed.with_attr("data-status")]
    text = " ".join(parsed.text)
    for claim in verdict.claims:
        assert claim.status in shown and claim.claim in text
        for family in claim.families.values():
            assert family.status in shown and family.label in text
        for regime in claim.extra.get("regimes") or []:
            assert regime["status"] in shown
    colours = {"SUPPORTED": "badge yes", "NOT SUPPORTED": "badge no",
               "PARTLY SUPPORTED": "badge partly", "INCONCLUSIVE": "badge unclear"}  # fmt: skip
    for status, css in zip(shown, badges, strict=True):
        if status in colours:
            assert css == colours[status], status


def test_every_chart_the_run_drew_is_inline_once_with_its_caption(page: str, run: RunData) -> None:
    drawn = {p.stem for p in run.charts_dir.glob("*.svg")}
    assert drawn, "the fixture draws charts"
    parsed = _Page(page)
    figures = [a["data-chart"] for t, a in parsed.with_attr("data-chart") if t == "figure"]
    assert sorted(figures) == sorted(drawn)
    text = " ".join(parsed.text)
    for chart in CATALOGUE:
        if chart.name in drawn:
            assert chart.caption in text
    assert page.count("<svg") >= len(drawn)
    # matplotlib reuses ids from file to file; on one page each must be unique.
    ids = [a["id"] for _, a in parsed.with_attr("id")]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1][:5]


def test_chart_points_carry_their_cell_repetitions_and_values_on_hover(page: str) -> None:
    tips = re.findall(r'<g id="[^"]*bench-tip-\d+"><title>([^<]*)</title>', page)
    assert len(tips) > 10
    assert all("per trial: min" in t and "max" in t for t in tips)
    assert all("median" in t or "merged histograms" in t for t in tips)
    assert any(re.search(r"idle_connections \d+, \d+ usable repetitions", t) for t in tips)


def test_the_latency_chart_says_how_many_samples_each_point_rests_on(
    page: str, run: RunData
) -> None:
    rows, _ = latency_rows(run)
    cells = merged_cells(run, rows)
    assert not cells.empty
    figure = page.split('data-chart="latency_vs_idle"', 1)[1].split("</figure>", 1)[0]
    assert "merged" in figure
    for cell in cells.to_dict("records"):
        assert f"<td>{int(cell['samples']):,}</td>" in figure
        assert f"<td>{cell['p99_us']:.4g}</td>" in figure


def test_each_claim_quotes_its_rules_and_names_every_interval_method(
    page: str, verdict: Verdict
) -> None:
    rules = verdict.method["rules"]
    parsed = _Page(page)
    quoted = {a["data-rule"] for _, a in parsed.with_attr("data-rule")}
    assert {"intervals", "claim1", "claim2", "claim3"} <= quoted
    text = " ".join(parsed.text)
    for name in ("claim1", "claim2", "claim3"):
        assert rules[name] in text
    claim2 = verdict.claim("2")
    assert claim2 is not None
    for regime in claim2.evidence.regimes or []:
        for comparison in regime.comparisons:
            if comparison.decision is not None:
                assert comparison.decision.method in text


def test_the_page_fetches_nothing(page: str) -> None:
    parsed = _Page(page)
    for tag, attrs in parsed.elements:
        for key in ("src", "href", "xlink:href", "action", "data"):
            value = attrs.get(key) or ""
            assert not re.match(r"\s*(https?:)?//", value), (tag, key, value)
        assert tag != "link", attrs
        if tag == "script":
            assert "src" not in attrs
    assert "@import" not in page and "url(http" not in page


def test_trial_table_has_every_trial_and_greys_the_flagged(page: str, run: RunData) -> None:
    parsed = _Page(page)
    ids = [a["id"] for _, a in parsed.with_attr("id")]
    assert "trials" in ids and "machine" in ids
    body = page.split('id="trials"', 1)[1].split("</table>", 1)[0]
    assert body.count("<tr") == len(run.trials) + 1  # and the heading row
    flagged = int(run.trials["flagged"].fillna(False).astype(bool).sum())
    assert flagged > 0 and body.count('<tr class="flagged">') == flagged
    assert "SYNTHETIC data" in page  # run.json's warning, in the conditions


def test_a_run_without_charts_or_verdict_still_builds(run: RunData, tmp_path: Path) -> None:
    copy = tmp_path / run.path.name
    shutil.copytree(run.path, copy)
    shutil.rmtree(copy / schema.CHARTS_DIR)
    (copy / schema.VERDICT_JSON).unlink()
    bare = load(copy)
    text = write_html_report(bare).read_text()
    assert "No charts in this run" in text and "No verdict computed" in text
    assert _Page(text).with_attr("data-chart") == []
    with_verdict = render_html_report(bare, read_verdict(run.path))
    assert "No charts in this run" in with_verdict and 'data-claim="1"' in with_verdict


def test_bench_report_writes_the_page_beside_report_md(run: RunData, tmp_path: Path) -> None:
    copy = tmp_path / run.path.name
    shutil.copytree(run.path, copy)
    (copy / "report.html").unlink(missing_ok=True)
    assert main(["report", str(copy)]) == 0
    assert (copy / schema.REPORT_MD).is_file()
    text = (copy / schema.REPORT_HTML).read_text()
    assert text.startswith("<!DOCTYPE html>") and 'data-claim="3"' in text


def test_compare_page_marks_the_cells_beyond_noise(tmp_path: Path) -> None:
    spec = SyntheticSpec(repetitions=3, idle_levels=(0, 1000), active_levels=(8,),
                         include_micro=False)  # fmt: skip
    a = make_synthetic_run(tmp_path / "a", spec)
    b = make_synthetic_run(tmp_path / "b", replace(spec, throughput_scale=2.0, seed=9))
    df = compare_runs(a, b)
    beyond = int(df["beyond_noise"].sum())
    assert beyond > 0
    text = render_compare_page(a, b, df)
    assert text.count('<tr class="beyond">') == beyond
    assert f"{beyond} of {len(df)} comparisons differ beyond run-to-run noise" in text
    assert a.run_id in text and b.run_id in text
    test_the_page_fetches_nothing(text)


def test_compare_html_writes_where_asked_and_refuses_a_missing_folder(
    run: RunData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cmp.html"
    assert main(["compare", str(run.path), str(run.path), "--html", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert (
        main(["compare", str(run.path), str(run.path), "--html", str(tmp_path / "no" / "x.html")])
        == 2
    )
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
