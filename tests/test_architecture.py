"""The package layout holds: no import cycle, no arrow against the data's path, small modules.

Data flows one way: servers and loadgen are independent of each other and of
bench (all three may use lifeline, which imports nothing of the project);
inside bench, measure -> store -> analyse -> present -> commands, and a stage
imports only from itself or an earlier stage. Imports inside functions count
(a lazy import is still an arrow); imports under ``if TYPE_CHECKING:`` are
annotations only and are left out of the cycle check.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("servers", "loadgen", "bench", "lifeline")
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
            if top == "lifeline" and other != top:
                wrong.append(f"{module} -> {target} (lifeline imports nothing of the project)")
            if top in ("servers", "loadgen") and other not in (top, "lifeline"):
                wrong.append(f"{module} -> {target} ({top} must not import {other})")
            stage, target_stage = _stage(module), _stage(target)
            if stage is not None and target_stage is not None and target_stage > stage:
                wrong.append(
                    f"{module} -> {target}: {BENCH_STAGES[stage]} must not import the later "
                    f"stage {BENCH_STAGES[target_stage]}"
                )
    assert wrong == []


# Modules beside the stages that every stage reads: they import no stage themselves.
SHARED_BY_EVERY_STAGE = ("bench.metrics", "bench.tables", "bench.tables.micro")


@pytest.mark.parametrize("module", SHARED_BY_EVERY_STAGE)
def test_what_every_stage_reads_imports_no_stage(module: str) -> None:
    graph = _graph(runtime_only=True)
    assert {t for t in graph[module] if _stage(t) is not None} == set()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_over_the_size_limit(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module} has {lines} lines"


# --- The test suite asserts behaviour, never speed or elapsed time -----------------------
#
# An assertion is a timing assertion when it orders (<, <=, >, >=; never ==, so a
# configured value such as ``window_s == 0.3`` is fine) one of these against anything:
#   - an elapsed time read off a clock: ``time.monotonic() - t0``, ``perf_counter() - start``
#     (both sides of the subtraction a call of CLOCK_CALLS or a name bound from one);
#   - a name bound to such a difference, or to a name bound from a clock call
#     (``t0 = time.monotonic(); ...; elapsed = now - t0``), so ``assert elapsed < 10``;
# or orders against a non-zero number literal (``assert rtt_s < 0.002``, ``p99["us"] < 500``):
#   - a name, attribute or string subscript key that says it is a time: it ends in
#     _s, _ms, _us or _ns, or contains elapsed, duration, took or rtt.
# A comparison with 0 is a sign check (something was measured), not a speed claim.
# ``time.monotonic() < deadline`` and ``deadline - time.monotonic() > 0`` (a bounded wait
# giving up) and ``create_time >= t0 - 1`` (an instant, not a duration) are left alone.
CLOCK_CALLS = frozenset(
    {"monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns", "time", "time_ns"}
)
TIME_WORDS = ("elapsed", "duration", "took", "rtt")
TIME_SUFFIXES = ("_s", "_ms", "_us", "_ns")
ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)


def _is_clock_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr in CLOCK_CALLS and isinstance(func.value, ast.Name)
    return isinstance(func, ast.Name) and func.id in CLOCK_CALLS - {"time"}


def _identifier(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        key = node.slice.value
        return key if isinstance(key, str) else None
    return None


def _says_time(node: ast.AST) -> bool:
    name = (_identifier(node) or "").lower()
    return bool(name) and (name.endswith(TIME_SUFFIXES) or any(w in name for w in TIME_WORDS))


def _is_nonzero_number(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
        and node.value != 0
    )


def _clock_names(tree: ast.AST) -> tuple[set[str], set[str]]:
    """Names bound from a clock call, and names bound to a difference involving one."""
    read: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _is_clock_call(node.value):
            read |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    elapsed: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if _is_elapsed(node.value, read):
                elapsed |= {t.id for t in targets if isinstance(t, ast.Name)}
    return read, elapsed


def _is_elapsed(node: ast.AST, read: set[str]) -> bool:
    """A later clock reading minus an earlier one (not ``deadline - now``, not ``t0 - 1``)."""
    if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub)):
        return False
    return all(
        _is_clock_call(side) or (isinstance(side, ast.Name) and side.id in read)
        for side in (node.left, node.right)
    )


def timing_assertions(source: str) -> list[int]:
    """Line numbers of the assertions on elapsed time in ``source`` (see the rules above)."""
    tree = ast.parse(source)
    read, elapsed = _clock_names(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assert):
            continue
        for cmp in (n for n in ast.walk(node.test) if isinstance(n, ast.Compare)):
            operands = [cmp.left, *cmp.comparators]
            for op, left, right in zip(cmp.ops, operands[:-1], operands[1:], strict=True):
                if not isinstance(op, ORDERING):
                    continue
                pair = (left, right)
                measured = any(
                    _is_elapsed(side, read) or (isinstance(side, ast.Name) and side.id in elapsed)
                    for side in pair
                )
                named = any(_says_time(a) and _is_nonzero_number(b) for a, b in (pair, pair[::-1]))
                if measured or named:
                    found.append(node.lineno)
    return sorted(set(found))


@pytest.mark.parametrize(
    "source",
    [
        "import time\nt0 = time.monotonic()\nassert time.monotonic() - t0 < 10\n",
        "from time import perf_counter\ns = perf_counter()\nelapsed = perf_counter() - s\n"
        "assert elapsed < 10\n",
        "import time\nstarted = time.time()\nend = time.time()\nwall = end - started\n"
        "assert 0 < wall <= 60\n",
        "assert clock.rtt_s < 0.002\n",
        "assert result['measured_duration_s'] < 60\n",
        "assert 0 < p99_us < 500 and ok\n",
        "assert elapsed > 1.5\n",
    ],
)
def test_the_timing_detector_sees_an_assertion_on_elapsed_time(source: str) -> None:
    assert timing_assertions(source) != [], source


@pytest.mark.parametrize(
    "source",
    [
        "assert cfg.window_s == 0.3\n",  # a configured value
        "assert result['measured_duration_s'] > 0\n",  # a sign check
        "import time\ndeadline = time.monotonic() + 5\nassert time.monotonic() < deadline\n",
        "assert estimate.total_s <= cfg.budget_s\n",  # a plan against its budget
        "assert requests > 100\n",
        "import time\ndeadline = time.monotonic() + 5\nleft_s = deadline - time.monotonic()\n"
        "assert left_s > 0\n",
        "import time\nt0 = time.time()\nassert p.create_time() >= t0 - 1\n",
        "assert result['duration_s'] == pytest.approx(1.0)\n",
    ],
)
def test_the_timing_detector_leaves_other_assertions_alone(source: str) -> None:
    assert timing_assertions(source) == [], source


def test_no_test_asserts_on_elapsed_time() -> None:
    offenders = [
        f"{path.name}:{line}"
        for path in sorted((REPO / "tests").glob("*.py"))
        for line in timing_assertions(path.read_text())
    ]
    assert offenders == [], "assert behaviour or an event, not elapsed time: " + ", ".join(
        offenders
    )


# --- The test suite synchronises on events, not sleeps --------------------------------
#
# A ``time.sleep`` (or ``asyncio.sleep``) in a test is a bounded poll when a ``while``
# loop encloses it (``while not ready() and time.monotonic() < deadline: sleep``). Any
# other sleep must say, in a ``# window:`` comment on its line or the line above, which
# span of time it paces or observes (a spin counted over a second, a client's dribble, a
# slow caller simulated): a sleep that waits for something to happen is a race.
SLEEP_MODULES = frozenset({"time", "asyncio"})
WINDOW_NOTE = "# window:"


def _is_sleep(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Attribute):
        return (
            func.attr == "sleep" and isinstance(func.value, ast.Name)
            and func.value.id in SLEEP_MODULES
        )  # fmt: skip
    return isinstance(func, ast.Name) and func.id == "sleep"


def fixed_sleeps(source: str) -> list[int]:
    """Line numbers of the sleeps in ``source`` that are neither polls nor noted windows."""
    lines = source.splitlines()
    found: list[int] = []

    def noted(line: int) -> bool:
        return any(WINDOW_NOTE in lines[i - 1] for i in (line, line - 1) if i >= 1)

    def visit(node: ast.AST, polling: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_sleep(child) and not polling and not noted(child.lineno):
                found.append(child.lineno)
            visit(child, polling or isinstance(child, ast.While))

    visit(ast.parse(source), False)
    return sorted(found)


@pytest.mark.parametrize(
    "source",
    [
        "import time\nsend()\ntime.sleep(0.3)\nassert stats().queued < 4\n",
        "import time\nfor _ in range(5):\n    time.sleep(0.05)\n",
        "from time import sleep\nsleep(1)\n",
        "import asyncio\nasync def f():\n    await asyncio.sleep(0.1)\n",
    ],
)
def test_the_sleep_detector_sees_a_sleep_used_to_wait(source: str) -> None:
    assert fixed_sleeps(source) != [], source


@pytest.mark.parametrize(
    "source",
    [
        "import time\nwhile not done() and time.monotonic() < deadline:\n    time.sleep(0.05)\n",
        "import time\nwhile True:\n    if ok():\n        break\n    time.sleep(0.02)\n",
        "import time\ntime.sleep(1.0)  # window: wait calls counted over 1 s\n",
        "import time\n# window: the client's pace\ntime.sleep(0.2)\n",
        "code = 'import time; time.sleep(60)'\n",  # a child process's program, not a wait
    ],
)
def test_the_sleep_detector_leaves_polls_and_windows_alone(source: str) -> None:
    assert fixed_sleeps(source) == [], source


def test_no_test_sleeps_to_synchronise() -> None:
    offenders = [
        f"{path.relative_to(REPO / 'tests')}:{line}"
        for path in sorted((REPO / "tests").rglob("*.py"))
        for line in fixed_sleeps(path.read_text())
    ]
    assert offenders == [], (
        "wait for an event or poll for the condition with a deadline, or say which window "
        f"the sleep is in a '{WINDOW_NOTE}' comment: " + ", ".join(offenders)
    )
