"""c-uring where it cannot run (issue 18, items 2 and 6): a build without liburing, a kernel
that refuses io_uring_setup (kernel.io_uring_disabled, a seccomp filter) or lacks what the
server needs makes the backend unavailable with the cause and the remedy: the registry
says so, the server command refuses with it (status 2, no traceback), nothing crashes."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
from test_c_support import C_BACKENDS  # noqa: F401 -- registers the C backends

from servers import registry, uring_support

REPO = Path(__file__).resolve().parents[1]
INCLUDE = sysconfig.get_paths()["include"]


def test_each_probe_failure_names_its_cause_and_remedy(tmp_path: Path, monkeypatch) -> None:
    sysctl = tmp_path / "io_uring_disabled"
    monkeypatch.setattr(uring_support, "DISABLED_SYSCTL", str(sysctl))
    describe = uring_support.describe_probe
    assert describe(None) is None
    sysctl.write_text("2\n")
    disabled = describe(("setup", errno.EPERM))
    assert "kernel.io_uring_disabled is 2" in disabled
    assert "sysctl -w kernel.io_uring_disabled=0" in disabled
    sysctl.write_text("0\n")
    assert "seccomp" in describe(("setup", errno.EPERM))
    sysctl.unlink()  # before Linux 6.6 there is no such sysctl: a refusal is a filter's
    assert "seccomp" in describe(("setup", errno.EPERM))
    assert "CONFIG_IO_URING=y" in describe(("setup", errno.ENOSYS))
    assert "ENOMEM" in describe(("setup", errno.ENOMEM))
    assert "Linux 5.19" in describe(("buf_ring", errno.EINVAL))
    multishot = describe(("multishot_recv", errno.EINVAL))
    assert "EINVAL" in multishot and "Linux 6.0" in multishot
    assert "wrong result" in describe(("multishot_recv", 0))
    assert uring_support.BUILD_HINT in describe(("build", 0))


def test_registry_and_extension_agree_on_the_mechanism() -> None:
    c_server = pytest.importorskip("servers.c_server", reason="the C extension is not built")
    assert registry.get("c-uring").mechanism == c_server.load_extension().URING_COMPLETION
    assert registry.get("c-uring").family == registry.FAMILY_C


# Runs in a subprocess: the extension's probe answers as on a kernel that refuses
# io_uring_setup with EPERM, with kernel.io_uring_disabled read from argv[1].
REFUSED = textwrap.dedent(
    """
    import errno, sys
    from servers import c_server, uring_support
    c_server.load_extension().uring_probe = lambda: ("setup", errno.EPERM)
    uring_support.DISABLED_SYSCTL = sys.argv.pop(1)
    """
)


def test_refused_io_uring_skips_c_uring_with_cause_and_remedy(tmp_path: Path) -> None:
    pytest.importorskip("servers.c_server", reason="the C extension is not built")
    sysctl = tmp_path / "io_uring_disabled"
    sysctl.write_text("2\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    probe = REFUSED + textwrap.dedent(
        """
        from servers import registry
        print(registry.get("c-uring").unavailable_reason())
        print(registry.get("c-epoll").unavailable_reason())
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(sysctl)], capture_output=True, text=True, cwd=REPO,
        env=env, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    reason, c_epoll = proc.stdout.splitlines()
    assert "kernel.io_uring_disabled is 2" in reason and "sysctl -w" in reason, reason
    assert c_epoll == "None", "only c-uring depends on io_uring"
    serve = REFUSED + "import runpy; runpy.run_module('servers', run_name='__main__')"
    proc = subprocess.run(
        [sys.executable, "-c", serve, str(sysctl), "--backend", "c-uring"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "kernel.io_uring_disabled is 2" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "READY" not in proc.stdout


@pytest.mark.skipif(not Path(INCLUDE, "Python.h").is_file(), reason="Python.h is missing")
def test_build_without_liburing_still_builds_and_says_why(tmp_path: Path) -> None:
    """SELECTBENCH_URING=0 builds as on a machine without liburing-dev: the extension
    builds, the readiness loops work, and c-uring is unavailable with the remedy."""
    env = {**os.environ, "SELECTBENCH_URING": "0"}
    for strict in ("SELECTBENCH_WERROR", "SELECTBENCH_SANITIZE"):
        env.pop(strict, None)
    proc = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--build-lib", str(tmp_path / "lib"),
         "--build-temp", str(tmp_path / "tmp")],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "backend c-uring is unavailable" in proc.stderr, proc.stderr
    (so,) = (tmp_path / "lib").rglob("_cloop*.so")
    check = textwrap.dedent(
        """
        from servers import c_server, registry
        cloop = c_server.load_extension()
        assert cloop.__file__ == sys.argv[1], cloop.__file__
        print(registry.get("c-uring").unavailable_reason())
        print(registry.get("c-epoll").unavailable_reason())
        try:
            cloop.Loop(mechanism="uring-completion", listen_fd=0, wake_fd=0, wake_write_fd=0,
                       http=True, http_close=False, instrumentation=True, max_queued_bytes=1,
                       max_head_bytes=64, sample_seed=0)
        except ValueError as exc:
            print(exc)
        """
    )
    run_env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SELECTBENCH_CLOOP": str(so),
        "SELECTBENCH_PLUGINS": "servers.c_backends",
    }
    proc = subprocess.run(
        [sys.executable, "-c", "import sys\n" + check, str(so)], capture_output=True,
        text=True, cwd=REPO, env=run_env, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    reason, c_epoll, refused = proc.stdout.splitlines()
    assert "built without liburing" in reason and uring_support.BUILD_HINT in reason, reason
    assert c_epoll == "None"
    assert "liburing" in refused and "apt-get install liburing-dev" in refused, refused
