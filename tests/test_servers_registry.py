"""The backend registry is the one list of backends: the test matrix covers it, plugins named
in SELECTBENCH_PLUGINS reach the server subprocess, the CLI is generated from ServerConfig,
and the typed stats reader is strict (issue 8)."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import test_servers_echo
import test_servers_http
import test_servers_lifecycle
import test_servers_stats
from test_servers_support import BACKENDS, assert_serves, backend_params

from servers import registry
from servers.cli import parse_args
from servers.config import ServerConfig
from servers.launch import available_backends
from servers.launch import start_server as launch
from servers.stats import COUNTERS, GAUGES, StatsDelta, StatsFormatError, StatsSnapshot

REPO_ROOT = Path(__file__).resolve().parents[1]
TOY_PLUGIN = """
from servers.registry import FAMILY_PYTHON_LOOP, Backend, register

register(Backend(
    name="toy-poll", family=FAMILY_PYTHON_LOOP, mechanism="poll", wait_instrumented=True,
    fd_number_limit=None, colour="#e377c2",
    factory="servers.backends.poll_backend:make_server",
    description="poll, registered from outside the package",
))
"""


def _parametrized_backends(module: object) -> set[str]:
    """Every backend a module's tests are parametrized over."""
    found: set[str] = set()
    for name in dir(module):
        for mark in getattr(getattr(module, name), "pytestmark", []):
            if mark.name == "parametrize" and mark.args[0] == "backend":
                found |= {p.values[0] for p in mark.args[1]}
    return found


@pytest.mark.parametrize(
    "module",
    [test_servers_echo, test_servers_http, test_servers_stats, test_servers_lifecycle],
    ids=lambda m: m.__name__,
)
def test_matrix_covers_every_registered_backend(module: object) -> None:
    """A backend added to servers.registry runs the basic echo/HTTP/stats/lifecycle tests."""
    assert set(registry.names()) <= _parametrized_backends(module)
    assert set(BACKENDS) == set(registry.names())


def test_registry_declarations() -> None:
    backends = registry.all_backends()
    assert [b.name for b in backends] == list(registry.names())
    assert len({b.colour for b in backends}) == len(backends), "colours must be distinct"
    assert registry.get("select").fd_number_limit == 1024
    assert all(b.fd_number_limit is None for b in backends if b.mechanism != "select")
    python_loop = ("select", "poll", "epoll", "epoll-et", "uring-poll")
    assert registry.names(registry.FAMILY_PYTHON_LOOP) == python_loop
    assert registry.get("asyncio").wait_instrumented
    assert not registry.get("uvloop").wait_instrumented
    assert registry.get("uvloop").requires == ("uvloop",)
    for backend in backends:
        assert backend.unavailable_reason() or callable(backend.load_factory())
    with pytest.raises(registry.UnknownBackend, match="choose one of select, poll"):
        registry.get("kqueue")
    assert set(available_backends()) == {b.name for b in backends if b.unavailable_reason() is None}


def test_a_backends_look_defaults_to_its_mechanism_and_family_and_can_be_declared() -> None:
    epoll, c_epoll = registry.get("epoll").look, registry.get("c-epoll").look
    assert epoll.marker == c_epoll.marker == registry.MECHANISM_MARKERS["epoll"]
    assert (epoll.linestyle, c_epoll.linestyle) == ("-", "--")
    assert (epoll.label, epoll.colour) == ("epoll", registry.get("epoll").colour)
    families = {b.family for b in registry.all_backends()}
    assert families <= set(registry.FAMILY_LOOKS), "every built-in family declares its look"
    assert registry.family_label(registry.FAMILY_C) == "C"
    assert registry.family_label("a-plugin-family") == "a-plugin-family"
    plugin = registry.Backend(
        name="toy", family="a-plugin-family", mechanism="kqueue", wait_instrumented=True,
        fd_number_limit=None, colour="#e377c2", factory="toy:make_server",
    )  # fmt: skip
    assert plugin.look == registry.Look("#e377c2", registry.DEFAULT_MARKER, "-", "toy")
    own = dataclasses.replace(plugin, marker="*", linestyle=":", label="Toy")
    assert own.look == registry.Look("#e377c2", "*", ":", "Toy")


def test_missing_module_makes_a_backend_unavailable_with_a_remedy(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    reason = registry.get("uvloop").unavailable_reason()
    assert reason is not None and "pip install uvloop" in reason
    assert "uvloop" not in available_backends()


def test_registering_a_different_declaration_under_a_taken_name_is_refused() -> None:
    poll = registry.get("poll")
    assert registry.register(poll) is poll  # identical: a no-op
    with pytest.raises(ValueError, match="already registered"):
        registry.register(dataclasses.replace(poll, colour="#000000"))


@pytest.fixture
def toy_plugin(tmp_path, monkeypatch) -> str:
    """SELECTBENCH_PLUGINS names a module outside the package; the registry reloads plugins."""
    (tmp_path / "toy_selectbench_plugin.py").write_text(TOY_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv(registry.PLUGINS_ENV, "toy_selectbench_plugin")
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.delitem(sys.modules, "toy_selectbench_plugin", raising=False)
    return "toy-poll"


def test_plugin_backend_is_served_through_the_registry_alone(toy_plugin: str) -> None:
    assert toy_plugin in registry.names(registry.FAMILY_PYTHON_LOOP)
    with launch(ServerConfig(backend=toy_plugin, protocol="echo")) as srv:
        assert srv.ready_info["backend"] == toy_plugin
        assert_serves(srv.port, "echo")
        stats = srv.stats()
        assert stats.backend == toy_plugin and stats.wait_instrumented and stats.wait_calls > 0
    assert srv.exit_status() == 0


def test_plugin_that_cannot_be_imported_names_module_and_remedy(monkeypatch) -> None:
    monkeypatch.setenv(registry.PLUGINS_ENV, "no_such_selectbench_plugin")
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    with pytest.raises(registry.PluginError, match=r"no_such_selectbench_plugin.*PYTHONPATH"):
        registry.names()
    proc = subprocess.run(
        [sys.executable, "-m", "servers", "--backend", "epoll"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc
    assert "no_such_selectbench_plugin" in proc.stderr and "PYTHONPATH" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_cli_flags_and_defaults_come_from_server_config() -> None:
    assert parse_args(["--backend", "poll"]) == ServerConfig(backend="poll")
    assert parse_args(["--backend", "select", "--http-close", "--no-control", "--cpu", "0"]) == (
        ServerConfig(backend="select", http_close=True, control=False, cpu=0)
    )
    helptext = subprocess.run(
        [sys.executable, "-m", "servers", "--help"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    for field in dataclasses.fields(ServerConfig):
        assert "--" + field.name.replace("_", "-") in helptext, field.name
    for name in registry.names():
        assert name in helptext


def test_config_json_round_trip_without_tyro() -> None:
    config = ServerConfig(backend="epoll-et", protocol="echo", cpu=0, max_fds=64)
    assert ServerConfig.from_json(config.to_json()) == config
    code = textwrap.dedent(f"""
        import sys
        from servers.cli import parse_args
        parse_args(["--config-json", {config.to_json()!r}])
        print("tyro" in sys.modules)
    """)
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert out.strip() == "False", "the launcher's path must not pay tyro's import"
    with pytest.raises(ValueError, match=r"unknown fields.*'colour'"):
        ServerConfig.from_json(json.dumps({"backend": "epoll", "colour": "red"}))


@pytest.mark.parametrize("backend", backend_params())
def test_sigterm_right_after_ready_exits_0(start_server, backend: str) -> None:
    """SIGTERM is held from before READY until the server's handlers are in place."""
    srv = start_server(backend, registry.get(backend).protocols[0])
    assert srv.exit_status() is None and srv.exit_reason() is None
    assert srv.stop() == 0
    assert srv.exit_status() == 0
    assert srv.exit_reason() == "exited with status 0 (no stderr)"


def test_exit_reason_names_the_signal() -> None:
    srv = launch(ServerConfig(backend="poll", protocol="echo"))
    try:
        srv._popen.send_signal(signal.SIGKILL)
        srv._popen.wait(timeout=10)
        assert srv.exit_status() == -signal.SIGKILL
        assert "SIGKILL" in (srv.exit_reason() or "")
    finally:
        srv.stop()


def _snapshot_doc(**changes: object) -> dict[str, object]:
    doc: dict[str, object] = {name: 0 for name in (*COUNTERS, *GAUGES)}
    doc.update(
        loop_iterations=0, time_ns=1_000, cpu_user_s=0.5, cpu_system_s=0.25, backend="epoll",
        protocol="http", pid=42, wait_instrumented=True, fd_number_limit=None,
        select_probe_error=None, select_probe_status=None, wait_cpu_sample_seed=7,
        wait_cpu_clock_overhead_ns=600,
    )  # fmt: skip
    doc.update(changes)
    return doc


def test_stats_snapshot_is_strict_and_delta_is_typed() -> None:
    before = StatsSnapshot.from_json(_snapshot_doc(current_connections=7, requests=10))
    after = StatsSnapshot.from_json(
        _snapshot_doc(time_ns=3_000, current_connections=5, requests=25, cpu_user_s=1)
    )
    assert after.cpu_user_s == 1.0 and type(after.cpu_user_s) is float
    window = before.delta(after)
    assert isinstance(window, StatsDelta)
    assert (window.window_ns, window.requests) == (2_000, 15)
    assert (window.start_current_connections, window.current_connections) == (7, 5)
    assert window.cpu_s == pytest.approx(0.5)
    assert StatsSnapshot.from_json(before.as_dict()) == before
    with pytest.raises(StatsFormatError, match="missing keys \\['requests'\\]"):
        doc = _snapshot_doc()
        del doc["requests"]
        StatsSnapshot.from_json(doc)
    with pytest.raises(StatsFormatError, match="unknown keys \\['extra'\\]"):
        StatsSnapshot.from_json(_snapshot_doc(extra=1))
    with pytest.raises(StatsFormatError, match="accepted=True"):
        StatsSnapshot.from_json(_snapshot_doc(accepted=True))
    with pytest.raises(ValueError, match="different processes"):
        before.delta(StatsSnapshot.from_json(_snapshot_doc(pid=43)))
