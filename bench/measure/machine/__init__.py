"""Machine metadata recorded in every run.json: what measured, on what, at which commit.

Following pyperf: a number without its context (CPU, kernel, Python, package
versions, commit and whether the tree was dirty, limits, load at start) cannot
be compared with another number later.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "pandas",
    "numpy",
    "scipy",
    "matplotlib",
    "psutil",
    "hdrhistogram",
    "pyarrow",
    "rich",
    "pytest-benchmark",
    "uvloop",
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (platform.processor() is often empty on Linux)."""
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def port_range() -> tuple[int, int] | None:
    """The ephemeral port range (client-side ports per source address)."""
    text = _read("/proc/sys/net/ipv4/ip_local_port_range")
    if not text:
        return None
    low, high = (int(x) for x in text.split())
    return low, high


def somaxconn() -> int | None:
    """The kernel's cap on listen() backlogs."""
    text = _read("/proc/sys/net/core/somaxconn")
    return int(text) if text else None


def cpu_governor() -> str | None:
    """CPU frequency governor of CPU 0 when the VM exposes it (often it does not)."""
    return _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape the numbers (None: not installed)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(repo: Path = REPO_ROOT) -> dict[str, Any]:
    """Commit hash and dirty flag of the checkout that ran; None when not a git checkout."""
    if shutil.which("git") is None:
        return {"commit": None, "dirty": None}
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(status.strip())}


def machine_metadata() -> dict[str, Any]:
    """Everything about this machine that a reader needs to judge or compare a run.

    Keys follow ``bench.store.schema.MACHINE_KEYS``; a few extras (kernel details,
    interpreter path, wrk) follow them. The git state is separate (``git_state``).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    uname = platform.uname()
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cpus_allowed": sorted(os.sched_getaffinity(0)),
        "kernel": uname.release,
        "python": platform.python_version(),
        "packages": package_versions(),
        "rlimit_nofile": {"soft": soft, "hard": hard},
        "ephemeral_port_range": list(port_range() or ()),
        "somaxconn": somaxconn(),
        "loadavg_start": list(os.getloadavg()),
        "governor": cpu_governor(),
        "os": uname.system,
        "machine": uname.machine,
        "python_implementation": platform.python_implementation(),
        "python_executable": sys.executable,
        "wrk_path": shutil.which("wrk"),
    }
