"""The package layout holds: no import cycle, no arrow against the data's path, small modules.

Data flows one way: servers and loadgen are independent of each other and of
bench; inside bench, measure -> store -> analyse -> present -> commands, and a
stage imports only from itself or an earlier stage. Imports inside functions
count (a lazy import is still an arrow); imports under ``if TYPE_CHECKING:``
are annotations only and are left out of the cycle check.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("servers", "loadgen", "bench")
BENCH_STAGES = ("measure", "store", "analyse", "present", "commands")
MAX_MODULE_LINES = 450


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, runtime_only: bool) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and runtime_only and _is_type_checking(node):
            for sub in node.body:  # mark their imports so the walk skips them
                for inner in ast.walk(sub):
                    inner._skip = True  # type: ignore[attr-defined]
    for node in ast.walk(tree):
        if getattr(node, "_skip", False):
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".")
                if MODULES[module].name != "__init__.py":
                    pkg = pkg[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join([*pkg, base] if base else pkg)
            for alias in node.names:
                yield f"{base}.{alias.name}"
                yield base


def _resolve(name: str) -> str | None:
    """The project module an import refers to (longest known prefix), or None."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def _graph(runtime_only: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        targets = {_resolve(n) for n in _imports(tree, module, runtime_only)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _is_package_parent(a: str, b: str) -> bool:
    """A package's __init__ importing its own submodule (or the reverse) is not a cycle."""
    return a.startswith(b + ".") or b.startswith(a + ".")


def test_no_import_cycle() -> None:
    graph = _graph(runtime_only=True)
    # Importing a submodule runs its package's __init__ anyway: that edge is implied.
    pruned = {m: {t for t in ts if not _is_package_parent(m, t)} for m, ts in graph.items()}
    assert _cycles(pruned) == []


def test_the_detector_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def _stage(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] == "bench" and len(parts) > 1 and parts[1] in BENCH_STAGES:
        return BENCH_STAGES.index(parts[1])
    return None


def test_arrows_follow_the_data_path() -> None:
    wrong = []
    for module, targets in _graph(runtime_only=False).items():
        top = module.split(".")[0]
        for target in targets:
            other = target.split(".")[0]
            if top in ("servers", "loadgen") and other != top:
                wrong.append(f"{module} -> {target} ({top} must not import {other})")
            stage, target_stage = _stage(module), _stage(target)
            if stage is not None and target_stage is not None and target_stage > stage:
                wrong.append(
                    f"{module} -> {target}: {BENCH_STAGES[stage]} must not import the later "
                    f"stage {BENCH_STAGES[target_stage]}"
                )
    assert wrong == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_over_the_size_limit(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module} has {lines} lines"
