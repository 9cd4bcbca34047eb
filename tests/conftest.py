"""Shared fixtures: real servers on 127.0.0.1 and a check that no process outlives its test."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from fixtures.machine_share import configure, machine_shared, session_folder, under_xdist
from fixtures.tiny_run import TinyRun, run_tiny, shared_tiny_run

from bench.measure.machine.lock import LOCK_PATH_ENV

# The fast tier (`-m "not slow"`) runs each per-backend test on select, epoll and
# c-epoll, and each load-generator test on the compiled core (the default); the rest of
# the matrix, and every test that reads the session's tiny run (a real `bench run`), is
# marked slow and runs in the full suite.
FAST_TIER_BACKENDS = frozenset({"select", "epoll", "c-epoll"})
BACKEND_PARAMETERS = ("backend", "twin")
FAST_TIER_LOADGEN_CORE = "c"


def _in_fast_tier(item: pytest.Item) -> bool:
    if "tiny_run" in getattr(item, "fixturenames", ()):
        return False
    params = getattr(getattr(item, "callspec", None), "params", {})
    if params.get("loadgen_core", FAST_TIER_LOADGEN_CORE) != FAST_TIER_LOADGEN_CORE:
        return False
    for name in BACKEND_PARAMETERS:
        value = params.get(name)
        if value is None:
            continue
        backends = {str(v) for v in value} if isinstance(value, tuple) else {str(value)}
        if not backends <= FAST_TIER_BACKENDS:
            return False
    return True


# The files pytest-xdist hands out first (pyproject.toml turns off its own order, which
# is by test count and left the files of a few long tests, such as tiny runs, Dask and
# namespaces, to the end, where both workers waited on them at once: 18% of the CPUs idle
# over a run on 2026-12-06). The first reads the shared tiny run, which is measured while
# the other worker runs short tests; the second goes to a fresh worker, whose descriptors
# below 1024 leave room for the 1,000 that its select cases pack there; then the longest
# files, a CPU-bound one beside one that mostly waits; the rest in collection order.
FIRST_FILES = (
    "test_no_traceback.py",
    "test_micro.py",
    "test_servers_http.py",
    "test_false_call_rates.py",
    "test_cluster_netns.py",
    "test_analyse_coverage.py",
    "test_orphans.py",
    "test_loadgen.py",
    "test_placement_dask.py",
    "test_verdict.py",
    "test_c_twins.py",
    "test_servers_wrk.py",
    "test_haproxy_bench.py",
    "test_notebooks.py",
    "test_c_servers.py",
    "test_servers_lifecycle.py",
    "test_servers_echo.py",
    "test_loadgen_churn.py",
)


def _dispatch_rank(item: pytest.Item) -> int:
    name = item.path.name
    return FIRST_FILES.index(name) if name in FIRST_FILES else len(FIRST_FILES)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not _in_fast_tier(item):
            item.add_marker(pytest.mark.slow)
    items.sort(key=_dispatch_rank)  # stable: a file keeps its tests' order


def _children() -> set[int]:
    return {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}


_private_lock_dir: tempfile.TemporaryDirectory[str] | None = None


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist gives each worker its own --basetemp inside the session's folder.
    basetemp = config.getoption("basetemp")
    configure(Path(basetemp).parent if under_xdist() and basetemp else None)
    # The `bench run`s of this process take a machine lock of their own: they neither
    # wait for a real run on this machine nor, on two workers, for each other (a test
    # that reads measured quality measures in machine_alone() instead).
    global _private_lock_dir
    _private_lock_dir = tempfile.TemporaryDirectory(prefix="selectbench-tests-")
    os.environ[LOCK_PATH_ENV] = str(Path(_private_lock_dir.name) / "machine.lock")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _private_lock_dir is not None:
        _private_lock_dir.cleanup()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    """Each test shares the machine from its setup to its teardown, module fixtures
    included; measuring inside machine_alone() waits to have it alone."""
    with machine_shared():
        return (yield)


@pytest.fixture(autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Fail any test that leaves a child process (server, load generator worker) running."""
    before = _children()
    yield
    leftover = []
    for pid in _children() - before:
        try:
            proc = psutil.Process(pid)
            # A process that is already a zombie is ended; give exiting ones a moment.
            proc.wait(timeout=3)
        except psutil.TimeoutExpired:
            leftover.append(pid)
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    assert not leftover, f"test left child processes running: {leftover}"


@pytest.fixture
def start_server() -> Iterator[Callable[..., object]]:
    """Factory: start_server(backend, protocol, **kw) -> a running ServerProcess.

    Every server started is stopped (by PID) at teardown.
    """
    from servers import registry
    from servers.launch import ServerConfig
    from servers.launch import start_server as _start

    started = []

    def factory(backend: str, protocol: str = "http", **kwargs: object):
        declared = registry.get(backend)
        reason = declared.unavailable_reason()
        if reason is not None:
            pytest.skip(reason)
        if protocol not in declared.protocols:
            pytest.skip(f"{backend} does not serve {protocol} (it serves {declared.protocols})")
        srv = _start(ServerConfig(backend=backend, protocol=protocol, **kwargs))
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        srv.stop()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """One real tiny run of every scenario (select and epoll), shared by the session.

    Read-only for its users: a test that changes files copies the folder first. Under
    pytest-xdist the first worker to ask makes it and the others read its record.
    """
    own = tmp_path_factory.mktemp("shared-tiny-run")
    shared = session_folder()
    return run_tiny(own) if shared is None else shared_tiny_run(shared, own)


@pytest.fixture(params=["c", "python"])
def loadgen_core(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test's load with each keep-alive loop: the compiled core, then Python's.

    The workers read SELECTBENCH_LOADGEN_CORE (loadgen.core); the "c" case is skipped
    where loadgen._cload is not built.
    """
    from loadgen.core import CORE_ENV, load_core

    if request.param == "c" and load_core() is None:
        pytest.skip("loadgen._cload is not built (python setup.py build_ext --inplace)")
    monkeypatch.setenv(CORE_ENV, request.param)
    return str(request.param)
