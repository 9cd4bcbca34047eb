"""Builds the optional C extension servers._cloop (the C twin servers, servers/c/).

Everything else about the package is declared in pyproject.toml. The extension
is optional: on a machine without a C compiler or Python's headers,
`pip install -e .` still succeeds, and the C backends report what is missing
(servers/c_backends.py).

Environment (read at build time):
  SELECTBENCH_SANITIZE=address,undefined (or 1)  build with AddressSanitizer and
                          UndefinedBehaviorSanitizer; "address" or "undefined" for one of
                          them (.ci/run builds both ways into build/sanitize-*)
  SELECTBENCH_WERROR=1    turn compiler warnings into errors
  SELECTBENCH_URING=0     build without the io_uring completion server even when liburing
                          is found (as on a machine without liburing-dev)

The io_uring completion server (servers/c/uring_server.c, backend c-uring) is built only
when a test program including <liburing.h> compiles and links with -luring; without it
the extension still builds, and c-uring reports why it is unavailable.
"""

from __future__ import annotations

import os
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SOURCES = [
    "servers/c/module.c",
    "servers/c/loop.c",
    "servers/c/http.c",
    "servers/c/sampling.c",
    "servers/c/mech_select.c",
    "servers/c/mech_poll.c",
    "servers/c/mech_epoll.c",
]
URING_SOURCES = ["servers/c/uring_server.c"]
# What uring_server.c needs from liburing 2.3+ (it has no io_uring_setup_buf_ring: the
# buffer ring is registered by hand), referenced so that compiling and linking checks it.
URING_PROBE = """
#include <liburing.h>
int selectbench_probe(struct io_uring *ring, struct io_uring_buf_reg *reg) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_multishot_accept(sqe, 0, 0, 0, 0);
    io_uring_prep_recv_multishot(sqe, 0, 0, 0, 0);
    io_uring_buf_ring_advance((struct io_uring_buf_ring *)0, 0);
    return io_uring_register_buf_ring(ring, reg, 0);
}
int main(void) { return 0; }
"""
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
        if os.environ.get("SELECTBENCH_URING") != "0" and self._liburing_links():
            ext.sources = [*ext.sources, *(s for s in URING_SOURCES if s not in ext.sources)]
            ext.libraries = [*ext.libraries, "uring"]
            ext.define_macros = [*ext.define_macros, ("SELECTBENCH_URING", "1")]
        else:
            print(
                "NOTE: liburing was not found (or SELECTBENCH_URING=0): building without the "
                "io_uring completion server; backend c-uring is unavailable (apt-get install "
                "liburing-dev, then pip install -e . again)",
                file=sys.stderr,
            )
        try:
            super().build_extension(ext)
        except Exception as exc:
            if _strict():
                raise
            self._failed = True
            self._warn(exc)

    def _liburing_links(self) -> bool:
        """Whether URING_PROBE compiles and links with -luring on this build's compiler."""
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "uring_probe.c")
            with open(src, "w") as f:
                f.write(URING_PROBE)
            try:
                objects = self.compiler.compile([src], output_dir=tmp)
                self.compiler.link_executable(objects, "uring_probe", output_dir=tmp,
                                              libraries=["uring"])  # fmt: skip
            except Exception:  # any failure (no header, no library, no compiler): without it
                return False
        return True

    @staticmethod
    def _warn(exc: BaseException) -> None:
        print(
            f"WARNING: the C extension servers._cloop was not built ({exc}); the c-* "
            "backends are unavailable: apt-get install gcc python3-dev, then pip install -e . "
            "again",
            file=sys.stderr,
        )


_compile_args, _link_args = _flags()
setup(
    ext_modules=[
        Extension(
            "servers._cloop",
            sources=SOURCES,
            depends=["servers/c/cloop.h", "servers/c/curing.h"],
            libraries=["m"],
            extra_compile_args=_compile_args,
            extra_link_args=_link_args,
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
