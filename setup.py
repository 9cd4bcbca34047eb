"""Builds the optional C extension servers._cloop (the C twin servers, servers/c/).

Everything else about the package is declared in pyproject.toml. The extension
is optional: on a machine without a C compiler or Python's headers,
`pip install -e .` still succeeds, and the C backends report what is missing
(servers/c_backends.py).

Environment (read at build time):
  SELECTBENCH_SANITIZE=1  build with AddressSanitizer and UndefinedBehaviorSanitizer
                          (used by .ci/run into a separate build directory)
  SELECTBENCH_WERROR=1    turn compiler warnings into errors
"""

from __future__ import annotations

import os
import sys

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
WARNINGS = ["-Wall", "-Wextra"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


def _flags() -> tuple[list[str], list[str]]:
    compile_args = ["-std=gnu11", "-O2", *WARNINGS]
    link_args: list[str] = []
    if os.environ.get("SELECTBENCH_WERROR") == "1":
        compile_args.append("-Werror")
    if os.environ.get("SELECTBENCH_SANITIZE") == "1":
        compile_args += ["-O1", "-g", *SANITIZE]
        link_args += SANITIZE
    return compile_args, link_args


class OptionalBuildExt(build_ext):
    """A failed build (no compiler, no Python.h) warns instead of failing the install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # any build failure leaves the C backends off
            self._warn(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._warn(exc)

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
            depends=["servers/c/cloop.h"],
            libraries=["m"],
            extra_compile_args=_compile_args,
            extra_link_args=_link_args,
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
