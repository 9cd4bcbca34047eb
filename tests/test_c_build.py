"""The C extension's build: warning-free under -Wall -Wextra, optional (a machine without a
compiler still installs, and the C backends then say what is missing and how to fix it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted(str(p) for p in (REPO / "servers" / "c").glob("*.c"))
# Compiled only where liburing is installed (setup.py); then with SELECTBENCH_URING defined.
URING_SOURCE = str(REPO / "servers" / "c" / "mech_uring_poll.c")
INCLUDE = sysconfig.get_paths()["include"]
HINT = "apt-get install gcc python3-dev, then pip install -e . again"
# Makes `import servers._cloop` fail as on a machine where the extension was never built.
NO_EXTENSION = textwrap.dedent(
    """
    import sys
    class _NoExtension:
        def find_spec(self, name, path=None, target=None):
            if name == "servers._cloop":
                raise ImportError("No module named 'servers._cloop'")
    sys.meta_path.insert(0, _NoExtension())
    """
)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
@pytest.mark.skipif(not Path(INCLUDE, "Python.h").is_file(), reason="Python.h is missing")
def test_sources_compile_without_warnings() -> None:
    """The flags setup.py builds with, plus -Werror: any warning fails."""
    assert '"-Wall", "-Wextra"' in (REPO / "setup.py").read_text()
    cmd = ["gcc", "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-fsyntax-only"]
    without_uring = [s for s in SOURCES if s != URING_SOURCE]
    proc = subprocess.run(
        [*cmd, f"-I{INCLUDE}", *without_uring], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr
    has_liburing = subprocess.run(
        [*cmd, "-x", "c", "-"], input="#include <liburing.h>\n", capture_output=True, text=True
    )
    if has_liburing.returncode == 0:
        proc = subprocess.run(
            [*cmd, "-DSELECTBENCH_URING=1", f"-I{INCLUDE}", *SOURCES],
            capture_output=True, text=True, cwd=REPO,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
@pytest.mark.skipif(not Path(INCLUDE, "Python.h").is_file(), reason="Python.h is missing")
def test_loadgen_core_compiles_without_warnings() -> None:
    """loadgen._cload (loadgen/c/), with the same flags and -Werror."""
    sources = sorted(str(p) for p in (REPO / "loadgen" / "c").glob("*.c"))
    assert sources
    cmd = ["gcc", "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-fsyntax-only"]
    proc = subprocess.run(
        [*cmd, f"-I{INCLUDE}", *sources], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr


def test_build_without_a_compiler_still_succeeds(tmp_path: Path) -> None:
    """setup.py's build_ext (what pip install -e . runs) warns and exits 0 when the
    compiler is missing; no extension is produced."""
    env = {**os.environ, "CC": str(tmp_path / "no-such-cc"), "LDSHARED": "no-such-ld -shared"}
    for strict in ("SELECTBENCH_WERROR", "SELECTBENCH_SANITIZE"):  # those make failures fatal
        env.pop(strict, None)
    proc = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--build-lib", str(tmp_path / "lib"),
         "--build-temp", str(tmp_path / "tmp")],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert HINT in proc.stderr, proc.stderr
    assert not list((tmp_path / "lib").rglob("_cloop*")), "an extension was built without cc"


def test_without_the_extension_c_backends_say_what_is_missing(tmp_path: Path) -> None:
    """No extension and no compiler on PATH: the registry's reason names both and the fix,
    and `python -m servers --backend c-epoll` refuses with it (status 2, no traceback)."""
    env = {**os.environ, "PATH": str(tmp_path), "SELECTBENCH_PLUGINS": "servers.c_backends"}
    env.pop("SELECTBENCH_CLOOP", None)
    probe = NO_EXTENSION + textwrap.dedent(
        """
        from servers import registry
        print(registry.get("c-epoll").unavailable_reason())
        print(registry.get("epoll").unavailable_reason())
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, env=env
    )
    assert proc.returncode == 0, proc.stderr
    reason, python_twin = proc.stdout.splitlines()
    assert "no C compiler (gcc) is installed" in reason, reason
    assert reason.endswith(HINT), reason
    assert python_twin == "None"
    serve = NO_EXTENSION + "import runpy; runpy.run_module('servers', run_name='__main__')"
    proc = subprocess.run(
        [sys.executable, "-c", serve, "--backend", "c-epoll"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert HINT in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "READY" not in proc.stdout
