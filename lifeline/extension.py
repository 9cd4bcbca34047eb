"""Load a compiled extension of this project: a build named by an environment variable,
else the installed one.

Here because ``servers`` and ``loadgen`` may import nothing of each other and both
load their C extension the same way (``servers._cloop``, ``loadgen._cload``); the
sanitizer builds of ``.ci/sanitize-c`` are named through the variable.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType


class ExtensionPathError(ImportError):
    """The environment names a file that is not a built extension module."""


def load_extension_module(name: str, path_env: str) -> ModuleType:
    """The module ``name``: from the file ``$path_env`` names when set (loaded once per
    process), else imported as usual; ImportError when it is not built."""
    path = os.environ.get(path_env)
    if not path:
        return importlib.import_module(name)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None or not Path(path).is_file():
        raise ExtensionPathError(f"{path_env}={path} is not a built extension module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module
