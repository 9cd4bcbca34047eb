"""Builds the optional C extensions: servers._cloop (the C twin servers, servers/c/) and
loadgen._cload (the load generator's compiled keep-alive and churn loops, loadgen/c/).

Everything else about the package is declared in pyproject.toml. The extension
is optional: on a machine without a C compiler or Python's headers,
`pip install -e .` still succeeds, the C backends report what is missing
(servers/c_backends.py) and the load generator runs its Python loop (loadgen.core).

Environment (read at build time):
  SELECTBENCH_SANITIZE=address,undefined (or 1)  build with AddressSanitizer and
                          UndefinedBehaviorSanitizer; "address" or "undefined" for one of
                          them (.ci/run builds both ways into build/sanitize-*)
  SELECTBENCH_WERROR=1    turn compiler warnings into errors
  SELECTBENCH_URING=0     leave out io_uring (URING_SOURCES: mech_uring_poll.c and the
                          completion server uring_server.c) even when liburing is
                          installed; otherwise it is built exactly when liburing.h and
                          -luring compile and link a probe program here
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError, LinkError

SOURCES = [
    "servers/c/module.c",
    "servers/c/loop.c",
    "servers/c/http.c",
    "servers/c/sampling.c",
    # One line per readiness adapter: it declares itself (servers/c/cloop.h CL_MECHANISM).
    "servers/c/mech_select.c",
    "servers/c/mech_select_big.c",
    "servers/c/mech_poll.c",
    "servers/c/mech_epoll.c",
]
# io_uring readiness (c-uring-poll, uring-poll) and the io_uring completion server
# (c-uring): only with liburing (apt-get install liburing-dev).
URING_SOURCES = ["servers/c/mech_uring_poll.c", "servers/c/uring_server.c"]
URING_ENV = "SELECTBENCH_URING"
# A ring, and what uring_server.c needs besides (liburing 2.3+: multishot accept and
# receive, a buffer ring registered by hand), referenced so that linking checks it.
URING_PROBE = """
#include <liburing.h>
int selectbench_probe(struct io_uring *ring, struct io_uring_buf_reg *reg) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_multishot_accept(sqe, 0, 0, 0, 0);
    io_uring_prep_recv_multishot(sqe, 0, 0, 0, 0);
    io_uring_buf_ring_advance((struct io_uring_buf_ring *)0, 0);
    return io_uring_register_buf_ring(ring, reg, 0);
}
int main(void) { struct io_uring r; return io_uring_queue_init(1, &r, 0) < 0; }
"""
# loadgen._cload: the load generator's loops (loadgen/c/, loadgen.keepalive_c, churn_c).
LOADGEN_SOURCES = [
    "loadgen/c/churn.c",
    "loadgen/c/module.c",
    "loadgen/c/core.c",
    "loadgen/c/http.c",
    "loadgen/c/sched.c",
]
WARNINGS = ["-Wall", "-Wextra"]
# Any sanitizer report stops the process: no recovering and going on.
SANITIZE = ["-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


def _strict() -> bool:
    """A checking build (-Werror or sanitizers) must fail loudly, not fall back."""
    return bool(os.environ.get("SELECTBENCH_WERROR") or os.environ.get("SELECTBENCH_SANITIZE"))


def _flags() -> tuple[list[str], list[str]]:
    compile_args = ["-std=gnu11", "-O2", *WARNINGS]
    link_args: list[str] = []
    if os.environ.get("SELECTBENCH_WERROR") == "1":
        compile_args.append("-Werror")
    sanitize = os.environ.get("SELECTBENCH_SANITIZE", "")
    if sanitize:
        sanitize = "address,undefined" if sanitize == "1" else sanitize
        flags = [f"-fsanitize={sanitize}", *SANITIZE]
        # servers._cloop.SANITIZE names them, so a test run can check which build it loaded.
        compile_args += ["-O1", "-g", *flags, f'-DSELECTBENCH_SANITIZE="{sanitize}"']
        link_args += flags
    return compile_args, link_args


class OptionalBuildExt(build_ext):
    """A failed build (no compiler, no Python.h) warns instead of failing the install."""

    _failed = False

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # any build failure leaves the C backends off
            if _strict():
                raise
            if not self._failed:  # else: the editable install's copy of what was not built
                self._warn(exc)

    def build_extension(self, ext: Extension) -> None:
        if ext.name == "servers._cloop" and not set(URING_SOURCES) & set(ext.sources):
            missing = self._liburing_missing()
            if missing is None:
                ext.sources += URING_SOURCES
                ext.libraries.append("uring")
                ext.define_macros.append(("SELECTBENCH_URING", "1"))
            else:
                print(
                    f"WARNING: building servers._cloop without io_uring ({missing}); the "
                    "uring-poll, c-uring-poll and c-uring backends are unavailable: apt-get "
                    "install liburing-dev, then pip install -e . again",
                    file=sys.stderr,
                )
        try:
            super().build_extension(ext)
        except Exception as exc:
            if _strict():
                raise
            self._failed = True
            self._warn(exc)

    def _liburing_missing(self) -> str | None:
        """None when a program using liburing compiles and links here, else why not."""
        if os.environ.get(URING_ENV) == "0":
            return f"{URING_ENV}=0"
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "uring_probe.c"
            source.write_text(URING_PROBE)
            try:
                objects = self.compiler.compile([str(source)], output_dir=tmp)
                self.compiler.link_executable(
                    objects, "uring_probe", output_dir=tmp, libraries=["uring"]
                )
            except CompileError:
                return "liburing.h not found"
            except LinkError:
                return "liburing (-luring) not found"
        return None

    @staticmethod
    def _warn(exc: BaseException) -> None:
        print(
            f"WARNING: a C extension was not built ({exc}); without servers._cloop the c-* "
            "backends are unavailable, without loadgen._cload the load generator runs its "
            "Python loop: apt-get install gcc python3-dev, then pip install -e . again",
            file=sys.stderr,
        )


_compile_args, _link_args = _flags()
setup(
    ext_modules=[
        Extension(
            "servers._cloop",
            sources=SOURCES,
            depends=["servers/c/cloop.h", "servers/c/curing.h", *URING_SOURCES],
            libraries=["m"],
            extra_compile_args=_compile_args,
            extra_link_args=_link_args,
        ),
        Extension(
            "loadgen._cload",
            sources=LOADGEN_SOURCES,
            depends=["loadgen/c/cload.h"],
            extra_compile_args=_compile_args,
            extra_link_args=_link_args,
        ),
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
