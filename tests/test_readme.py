"""The README cannot drift from the code: its commands are CI's, and they parse.

- The set-up block's test command is exactly the last command of ``.ci/run``,
  and its install command is ``.ci/run``'s ``pip install`` of the project.
- Every ``python -m bench ...`` line the README shows parses with bench's own
  argument parser, and every command, preset, scenario and backend is named.
- The README's pictures are charts ``docs/update_figures.py`` copies from a run,
  and once copied they trace back to one real run (its run.json and verdict.json).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from fixtures.synthetic_run import SyntheticSpec, make_synthetic_run

from bench.commands import COMMANDS, build_parser
from bench.measure import scenarios
from bench.measure.config import PUBLIC_PRESETS
from bench.present.chart_catalogue import CHARTS
from bench.store import schema
from servers import registry

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
CI_RUN = REPO / ".ci" / "run"
FIGURES = REPO / "docs" / "figures"
SETUP_HEADING = "## Set-up"


def _readme() -> str:
    return README.read_text()


def _fenced_blocks(text: str) -> list[tuple[str, list[str]]]:
    """(heading above it, lines) of every ``` block."""
    blocks: list[tuple[str, list[str]]] = []
    heading, inside, lines = "", False, []
    for line in text.splitlines():
        if line.startswith("```"):
            if inside:
                blocks.append((heading, lines))
            inside, lines = not inside, []
        elif inside:
            lines.append(line)
        elif line.startswith("#"):
            heading = line.strip()
    return blocks


def _setup_commands() -> list[str]:
    for heading, lines in _fenced_blocks(_readme()):
        if heading.startswith(SETUP_HEADING):
            return [ln.strip() for ln in lines if ln.strip()]
    raise AssertionError(f"README has no fenced block under a '{SETUP_HEADING}' heading")


def _ci_commands() -> list[str]:
    """Non-empty, non-comment lines of .ci/run (the shebang is a comment)."""
    return [
        ln.strip()
        for ln in CI_RUN.read_text().splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]


def _pip_install_args(command: str) -> list[str]:
    """``[python -m] pip install ARGS`` -> ARGS; [] when the command is not a pip install."""
    words = shlex.split(command)
    if words[:3] == ["python", "-m", "pip"]:
        words = words[2:]
    return words[2:] if words[:2] == ["pip", "install"] else []


# ------------------------------------------------------------- set-up commands == CI's


def test_setup_block_has_exactly_the_two_commands() -> None:
    commands = _setup_commands()
    assert len(commands) == 2, commands
    assert " && " in commands[0], "the first command installs and then runs: 'A && B'"


def test_readme_test_command_is_the_last_command_of_ci_run() -> None:
    assert _setup_commands()[1] == _ci_commands()[-1], (
        "README's test command and the last command of .ci/run differ: change both together"
    )


def test_readme_install_is_ci_run_pip_install_of_the_project() -> None:
    install = _setup_commands()[0].split(" && ")[0]
    readme_args = _pip_install_args(install)
    assert readme_args, f"README's first command does not start with pip install: {install!r}"
    ci_project_installs = [
        _pip_install_args(c) for c in _ci_commands() if "-e" in _pip_install_args(c)
    ]
    assert ci_project_installs == [readme_args], (
        f".ci/run installs the project with {ci_project_installs}, the README with "
        f"{readme_args}: change both together"
    )


def test_readme_run_command_is_a_bench_run() -> None:
    run = shlex.split(_setup_commands()[0].split(" && ")[1])
    assert run[:3] == ["python", "-m", "bench"], run
    args = build_parser().parse_args(run[3:])
    assert args.command == "run"


def test_setup_helpers_cannot_miss_a_drift() -> None:
    """The parsers above see what they must: a changed flag is a different command."""
    assert _pip_install_args("python -m pip install -e '.[dev]'") == ["-e", ".[dev]"]
    assert _pip_install_args("pip install -e '.[dev]'") == ["-e", ".[dev]"]
    assert _pip_install_args("pip install -e '.[dev,x]'") != ["-e", ".[dev]"]
    assert _pip_install_args("python -m pytest") == []


# ------------------------------------------------------------- every shown command exists


def _shown_bench_commands() -> list[str]:
    text = _readme()
    lines = [ln for _, block in _fenced_blocks(text) for ln in block]
    lines += re.findall(r"`(python -m bench [^`]+)`", text)
    commands = []
    for line in lines:
        for part in line.split(" && "):
            part = part.split("  #")[0].strip()
            if part.startswith("python -m bench"):
                commands.append(part)
    return commands


def test_every_bench_command_in_the_readme_parses() -> None:
    commands = _shown_bench_commands()
    assert len(commands) >= 8, commands
    parser = build_parser()
    for command in commands:
        try:
            args = parser.parse_args(shlex.split(command)[3:])
        except SystemExit as exc:
            pytest.fail(f"README shows `{command}`, which bench refuses (exit {exc.code})")
        assert args.command in COMMANDS, command


def test_readme_names_every_command_preset_scenario_and_backend() -> None:
    text = _readme()
    missing = [f"python -m bench {c}" for c in COMMANDS if f"python -m bench {c}" not in text]
    missing += [f"`{name}`" for name in (*PUBLIC_PRESETS, *scenarios.names(), *registry.names())]
    missing = [m for m in missing if m not in text]
    assert not missing, f"README does not mention {missing}"


def test_the_extras_the_readme_installs_exist() -> None:
    text = _readme()
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    named = set(re.findall(r"pip install -e '\.\[([a-z,]+)\]'", text))
    assert {"dev", "notebooks"} <= named, named
    for name in named:
        assert name in extras, f"README installs the extra {name!r}, pyproject has {sorted(extras)}"
    # The test suite executes the notebooks, so what that needs must come with [dev].
    dev = " ".join(extras["dev"])
    for package in ("nbclient", "nbformat", "ipykernel"):
        assert package in dev, f"{package} is missing from the dev extra"
    assert "jupyterlab" in " ".join(extras["notebooks"])
    assert "jupyter lab notebooks/" in text


def test_local_links_in_the_readme_exist() -> None:
    links = re.findall(r"\]\(([^)#]+)\)", _readme())
    local = [ln for ln in links if "://" not in ln]
    generated = [ln for ln in local if ln.startswith("docs/figures")]
    missing = [ln for ln in set(local) - set(generated) if not (REPO / ln).exists()]
    assert not missing, f"README links to missing files: {missing}"


# ------------------------------------------------------------- figures trace back to a run


def _update_figures_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "update_figures", REPO / "docs" / "update_figures.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _readme_figures() -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(docs/figures/([^)]+)\)", _readme())


def test_readme_figures_are_charts_update_figures_copies() -> None:
    figures = _readme_figures()
    assert figures, "the README shows no chart from docs/figures/"
    defaults = _update_figures_module().DEFAULT_CHARTS
    assert set(defaults) <= set(CHARTS), (
        "update_figures copies charts bench.present.chart_catalogue never draws"
    )
    module = _update_figures_module()
    for name in figures:
        if name == module.PAGE_SCREENSHOT:  # its picture of the run's report.html
            continue
        assert name.endswith(".png") and name[: -len(".png")] in defaults, (
            f"README shows docs/figures/{name}, which update_figures.py does not copy by default"
        )


def test_committed_figures_trace_back_to_one_real_run() -> None:
    run_json = FIGURES / schema.RUN_JSON
    if not run_json.is_file():
        pytest.skip("docs/figures/ not written yet: run `python docs/update_figures.py RUN`")
    meta = json.loads(run_json.read_text())
    verdict = json.loads((FIGURES / schema.VERDICT_JSON).read_text())
    assert verdict["run_id"] == meta["run_id"], "verdict.json and run.json are of different runs"
    assert meta["preset"] not in _update_figures_module().TEST_PRESETS
    assert meta["run_id"] in (FIGURES / "README.md").read_text()
    for name in _readme_figures():
        assert (FIGURES / name).is_file(), f"README shows docs/figures/{name}, which is missing"


def _synthetic_run_with_charts(root: Path) -> Path:
    run = make_synthetic_run(root, SyntheticSpec(idle_levels=(0, 1000), active_levels=(8,)))
    (run.path / schema.VERDICT_JSON).write_text(json.dumps({"run_id": run.run_id, "claims": []}))
    for name in CHARTS:  # stand-ins: the script copies bytes, it does not draw
        (run.charts_dir / f"{name}.png").write_bytes(f"png of {name}".encode())
    return run.path


def test_update_figures_copies_charts_run_json_and_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = _update_figures_module()
    run = _synthetic_run_with_charts(tmp_path / "results")
    dest = tmp_path / "figures"
    dest.mkdir()
    (dest / "stale_chart_of_another_run.png").write_bytes(b"old")
    code = module.main([str(run), "--dest", str(dest), "--allow-test-run"])
    assert code == 0, capsys.readouterr().err
    copied = sorted(p.name for p in dest.iterdir())
    expected = [f"{n}.png" for n in module.DEFAULT_CHARTS]
    assert copied == sorted([*expected, "README.md", schema.RUN_JSON, schema.VERDICT_JSON])
    for name in [*expected, schema.RUN_JSON, schema.VERDICT_JSON]:
        src = run / (f"{schema.CHARTS_DIR}/{name}" if name.endswith(".png") else name)
        assert (dest / name).read_bytes() == src.read_bytes(), name
    note = (dest / "README.md").read_text()
    assert run.name in note and "mean nothing" in note
    assert "numbers for the README" in capsys.readouterr().out


def test_update_figures_refuses_test_runs_and_missing_charts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = _update_figures_module()
    run = _synthetic_run_with_charts(tmp_path / "results")
    dest = tmp_path / "figures"
    assert module.main([str(run), "--dest", str(dest)]) == module.EXIT_USAGE
    assert "test-only preset" in capsys.readouterr().err
    (run / schema.CHARTS_DIR / "cpu_per_request_vs_idle.png").unlink()
    assert module.main([str(run), "--dest", str(dest), "--allow-test-run"]) == module.EXIT_USAGE
    assert "python -m bench plot" in capsys.readouterr().err
    assert not dest.exists(), "nothing is copied when a chart is missing"


@pytest.mark.slow  # about a second: the full suite runs it, the fast tier does not
def test_update_figures_copies_the_runs_page_and_pictures_it_where_chromium_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = _update_figures_module()
    run = _synthetic_run_with_charts(tmp_path / "results")
    page = "<!DOCTYPE html><html><body><h1>the run's page</h1></body></html>"
    (run / schema.REPORT_HTML).write_text(page)
    dest = tmp_path / "figures"
    assert module.main([str(run), "--dest", str(dest), "--allow-test-run"]) == 0
    assert (dest / schema.REPORT_HTML).read_text() == page
    note = (dest / "README.md").read_text()
    assert f"`{schema.REPORT_HTML}`" in note
    picture = dest / module.PAGE_SCREENSHOT
    if picture.is_file():
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"`{module.PAGE_SCREENSHOT}`" in note
    else:
        assert f"no {module.PAGE_SCREENSHOT}" in capsys.readouterr().err
