"""Copy a real run's charts, run.json and verdict.json into docs/figures/ for the README.

The README's pictures must trace back to a measurement anyone can inspect, so
they are never drawn by hand or from a test run: this script copies the chosen
PNG charts exactly as ``python -m bench run`` (or ``bench plot``) drew them,
next to that run's ``run.json`` (config, machine, commit) and ``verdict.json``,
and writes ``docs/figures/README.md`` saying where they came from. It also
prints the figures the top-level README quotes, read from the same run.

    python docs/update_figures.py [RUN] [--charts NAME,NAME|all] [--results-dir DIR]

RUN is a run folder, a run id (or unique prefix) or ``latest`` (the default).
Test-only runs (preset ``tiny``, synthetic runs) and incomplete runs are
refused unless ``--allow-test-run`` / ``--allow-partial`` is given.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere in the checkout
    sys.path.insert(0, str(REPO))

from bench import metrics  # noqa: E402
from bench.store import schema  # noqa: E402
from bench.store.results import RunData, RunNotFoundError, UnknownSchemaVersionError, load  # noqa: E402

DEST = REPO / "docs" / "figures"
# The two charts the README shows; names are bench.present.chart_catalogue.CHARTS keys (file stems).
DEFAULT_CHARTS = ("wait_cost_vs_descriptors", "cpu_per_request_vs_idle")
TEST_PRESETS = ("tiny", "synthetic-test")
# The README's picture of the run's report.html, taken by headless Chromium when installed.
PAGE_SCREENSHOT = "report_page.png"
PAGE_WINDOW = "1280,1500"
SOURCE_NOTE = "README.md"
EXIT_OK, EXIT_USAGE = 0, 2


class FigureError(Exception):
    """The run cannot supply the figures; the message says why and what to do."""


def all_chart_names() -> tuple[str, ...]:
    from bench.present.chart_catalogue import CHARTS

    return tuple(CHARTS)


def check_run(run: RunData, allow_test_run: bool, allow_partial: bool) -> None:
    preset = run.meta.get("preset")
    if preset in TEST_PRESETS and not allow_test_run:
        raise FigureError(
            f"run {run.run_id} uses the test-only preset {preset!r}: its numbers mean nothing. "
            "Measure with `python -m bench run` (quick or standard) and pass that run, "
            "or add --allow-test-run to copy it anyway (never for the committed README)."
        )
    if run.meta.get("status") != "complete" and not allow_partial:
        raise FigureError(
            f"run {run.run_id} has status {run.meta.get('status')!r}, not 'complete': it was "
            "interrupted or is still running. Pass a complete run, or add --allow-partial."
        )
    if run.verdict is None:
        raise FigureError(
            f"run {run.run_id} has no {schema.VERDICT_JSON}: write it with "
            f"`python -m bench report {run.path}` first."
        )


def chart_sources(run: RunData, names: Sequence[str]) -> list[Path]:
    known = all_chart_names()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise FigureError(f"unknown chart {', '.join(unknown)}: choose from {', '.join(known)}")
    sources = [run.charts_dir / f"{name}.png" for name in names]
    missing = [p.name for p in sources if not p.is_file()]
    if missing:
        raise FigureError(
            f"run {run.run_id} has no {', '.join(missing)} in {run.charts_dir}: draw the charts "
            f"with `python -m bench plot {run.path}` (a chart is skipped when the run lacks its "
            "scenario: choose another with --charts)."
        )
    return sources


def source_note(run: RunData, charts: Sequence[Path], pages: Sequence[str] = ()) -> str:
    """docs/figures/README.md: which run these files are, on what machine, with what result."""
    meta, machine, git = run.meta, run.meta.get("machine") or {}, run.meta.get("git") or {}
    commit = f"{git.get('commit')}{' (dirty)' if git.get('dirty') else ''}"
    lines = [
        "# Figures used by the top-level README",
        "",
        "Written by `python docs/update_figures.py`; do not edit by hand. Every file here",
        f"comes from one run: **{run.run_id}** (preset `{meta.get('preset')}`, status "
        f"`{meta.get('status')}`, {meta.get('created_utc')} to {meta.get('finished_utc')}).",
        "",
        f"- Machine: {machine.get('cpu_model')}, {machine.get('cores')} cores "
        f"(allowed {machine.get('cpus_allowed')}), kernel {machine.get('kernel')}, "
        f"Python {machine.get('python')}.",
        f"- Commit: `{commit}`.",
        f"- `{schema.RUN_JSON}`: the run's configuration, machine and commit, copied unchanged.",
        f"- `{schema.VERDICT_JSON}`: the verdict computed from that run, copied unchanged.",
        *[f"- `{p.name}`: `charts/{p.name}` of that run, copied unchanged." for p in charts],
        *pages,
        "",
        "Verdict:",
        "",
    ]
    for claim in (run.verdict or {}).get("claims", []):
        lines.append(f"- Claim {claim['id']} ({claim['claim']}): **{claim['status']}**.")
    for warning in meta.get("warnings") or []:
        lines.append(f"- Run warning: {warning}")
    if meta.get("preset") in TEST_PRESETS:
        lines.append(f"- **Test-only preset `{meta.get('preset')}`: these numbers mean nothing.**")
    lines += [
        "",
        "Redraw them from the run folder with `python -m bench plot RUN`; explore the run with",
        "`notebooks/explore.ipynb`.",
        "",
    ]
    return "\n".join(lines)


def screenshot_page(page: Path, out: Path) -> str | None:
    """Headless Chromium's picture of the top of ``page``; None when taken, else why not.

    Every host name is unresolvable and the proxy dead, so the picture shows what the page
    holds itself. ``subprocess.run`` ends Chromium by its PID if it overruns the timeout.
    """
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return "Chromium is not installed (apt-get install chromium)"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--window-size={PAGE_WINDOW}", f"--screenshot={out}", "--proxy-server=127.0.0.1:9",
           "--host-resolver-rules=MAP * ~NOTFOUND", page.resolve().as_uri()]  # fmt: skip
    try:
        subprocess.run(cmd, capture_output=True, timeout=120, check=True)
    except (subprocess.SubprocessError, OSError) as exc:
        return f"Chromium failed: {exc}"
    return None if out.is_file() else "Chromium wrote no picture"


def update_figures(run: RunData, names: Sequence[str], dest: Path) -> list[Path]:
    """Replace dest's figures with the chosen charts, run.json, verdict.json, the run's
    report.html with a screenshot of it (when the run has the page), and a source note."""
    charts = chart_sources(run, names)
    dest.mkdir(parents=True, exist_ok=True)
    # Files of an earlier run would otherwise sit beside this run's and mislead.
    stale = (schema.RUN_JSON, schema.VERDICT_JSON, schema.REPORT_HTML)
    for old in [*dest.glob("*.png"), *(dest / n for n in stale)]:
        old.unlink(missing_ok=True)
    written = []
    for src in [*charts, run.path / schema.RUN_JSON, run.path / schema.VERDICT_JSON]:
        written.append(Path(shutil.copy2(src, dest / src.name)))
    pages: list[str] = []
    if (run.path / schema.REPORT_HTML).is_file():
        page = Path(shutil.copy2(run.path / schema.REPORT_HTML, dest / schema.REPORT_HTML))
        written.append(page)
        pages.append(f"- `{schema.REPORT_HTML}`: the run's page, copied unchanged.")
        why_not = screenshot_page(page, dest / PAGE_SCREENSHOT)
        if why_not is None:
            written.append(dest / PAGE_SCREENSHOT)
            pages.append(f"- `{PAGE_SCREENSHOT}`: headless Chromium's picture of its top.")
        else:
            print(f"update_figures: no {PAGE_SCREENSHOT}: {why_not}", file=sys.stderr)
    note = dest / SOURCE_NOTE
    note.write_text(source_note(run, charts, pages))
    written.append(note)
    return written


def readme_numbers(run: RunData) -> str:
    """The medians the top-level README quotes, from the same run (usable trials only)."""
    import pandas as pd

    from bench.analyse.stats import usable_trials

    t = usable_trials(run.trials)
    out = []
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        idle = t[(t["scenario"] == "idle-scaling") & (t["mode"] == "open")]
        if not idle.empty:
            cpu = idle.pivot_table(
                index="idle_connections",
                columns="backend",
                values=metrics.SERVER_CPU_US_PER_REQ.name,
                aggfunc="median",
            )
            out += [
                "server CPU per request (µs), idle-scaling, open loop:",
                cpu.round(1).to_string(),
            ]
        wait = t[(t["scenario"] == "idle-scaling") & (t["mode"] == "closed")]
        if not wait.empty:
            w = wait.pivot_table(
                index="idle_connections",
                columns="backend",
                values=metrics.SERVER_WAIT_US_PER_CALL.name,
                aggfunc="median",
            )
            out += ["in-server wait call (µs), idle-scaling, closed loop:", w.round(1).to_string()]
            thr_idle = wait.pivot_table(
                index="idle_connections",
                columns="backend",
                values=metrics.THROUGHPUT_RPS.name,
                aggfunc="median",
            )
            out += ["throughput (req/s), idle-scaling, closed loop:"]
            out += [thr_idle.round(0).to_string()]
        act = t[t["scenario"] == "active-scaling"]
        if not act.empty:
            thr = act.pivot_table(
                index="active_connections",
                columns="backend",
                values=metrics.THROUGHPUT_RPS.name,
                aggfunc="median",
            )
            out += ["throughput (req/s), active-scaling, closed loop:", thr.round(0).to_string()]
        if not run.micro.empty:
            one = run.micro[run.micro["ready"] == "one"].pivot_table(
                index="n_registered", columns="mechanism", values="median_us", aggfunc="median"
            )
            out += ["micro: one wait call, one ready (µs):", one.round(2).to_string()]
    for claim in (run.verdict or {}).get("claims", []):
        out.append(f"claim {claim['id']}: {claim['status']}: {claim.get('summary', '')}")
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python docs/update_figures.py",
        description="Copy a run's charts, run.json and verdict.json into docs/figures/.",
    )
    p.add_argument("run", nargs="?", default="latest", help="run folder, id or 'latest'")
    p.add_argument("--results-dir", default=None, help="where runs live (default ./results)")
    p.add_argument(
        "--charts",
        default=",".join(DEFAULT_CHARTS),
        help=f"comma-separated chart names, or 'all' (default: {','.join(DEFAULT_CHARTS)})",
    )
    p.add_argument("--dest", default=str(DEST), help="destination folder (default docs/figures)")
    p.add_argument("--allow-test-run", action="store_true", help="accept a tiny/synthetic run")
    p.add_argument("--allow-partial", action="store_true", help="accept an incomplete run")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names = (
        all_chart_names()
        if args.charts == "all"
        else tuple(n.strip() for n in args.charts.split(",") if n.strip())
    )
    try:
        run = load(args.run, args.results_dir)
        check_run(run, args.allow_test_run, args.allow_partial)
        written = update_figures(run, names, Path(args.dest))
    except (FigureError, RunNotFoundError, UnknownSchemaVersionError) as exc:
        print(f"update_figures: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"copied from run {run.run_id} ({run.path}):")
    for path in written:
        print(f"  {path}")
    print()
    print("numbers for the README, from the same run:")
    print(readme_numbers(run))
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
