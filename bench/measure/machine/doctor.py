"""``bench doctor``: is this machine ready to measure, and if not, what to change.

Each check returns what it found, whether that is fine for the presets, and a
remedy when it is not. ``bench run`` uses the same checks (``check_limits``) to
refuse a sweep the machine cannot hold before anything starts.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import resource
import shutil
from dataclasses import dataclass

from bench.measure.machine import cpu_governor, port_range, somaxconn

# Descriptors a process needs besides its sockets (stdio, pipes, imports, epoll fds).
FD_MARGIN = 64


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    value: str
    ok: bool
    remedy: str = ""
    # A hard problem blocks runs; a soft one only makes numbers less clean.
    severity: str = "warn"  # "ok" | "warn" | "error"


def _cores() -> Check:
    allowed = sorted(os.sched_getaffinity(0))
    value = f"{len(allowed)} usable ({os.cpu_count()} online): {allowed}"
    if len(allowed) >= 2:
        return Check("cores", value, True, severity="ok")
    return Check(
        "cores",
        value,
        False,
        "server and load generator will share one CPU: numbers are labelled shared-CPU; "
        "run on a machine (or taskset) with at least 2 CPUs for clean results",
    )


def _nofile(needed: int) -> Check:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    value = f"soft {soft}, hard {hard}"
    if hard >= needed:
        return Check("RLIMIT_NOFILE", value, True, severity="ok")
    return Check(
        "RLIMIT_NOFILE",
        value,
        False,
        f"the full preset holds {needed - FD_MARGIN} connections per process and needs "
        f"{needed} descriptors: run `ulimit -n {max(needed, 20000)}` (hard limit: "
        f"/etc/security/limits.conf or the container's --ulimit nofile)",
        severity="error",
    )


def _ports(needed: int) -> Check:
    rng = port_range()
    if rng is None:
        return Check("ephemeral ports", "unreadable", True, severity="ok")
    size = rng[1] - rng[0] + 1
    value = f"{rng[0]}-{rng[1]} ({size} ports per source address)"
    if size >= needed:
        return Check("ephemeral ports", value, True, severity="ok")
    return Check(
        "ephemeral ports",
        value,
        False,
        "widen it: `sysctl -w net.ipv4.ip_local_port_range='1024 65000'` "
        "(the load generator also spreads connections over 127.0.0.x source addresses)",
    )


def _somaxconn() -> Check:
    value = somaxconn()
    if value is None:
        return Check("somaxconn", "unreadable", True, severity="ok")
    if value >= 1024:
        return Check("somaxconn", str(value), True, severity="ok")
    return Check(
        "somaxconn",
        str(value),
        False,
        "bursts of connects may be dropped and retried (slow connection set-up): "
        "`sysctl -w net.core.somaxconn=4096`",
    )


def _governor() -> Check:
    gov = cpu_governor()
    if gov is None:
        return Check("CPU governor", "not exposed (typical in a VM)", True, severity="ok")
    if gov == "performance":
        return Check("CPU governor", gov, True, severity="ok")
    return Check(
        "CPU governor",
        gov,
        False,
        "frequency scaling adds noise: `sudo cpupower frequency-set -g performance`",
    )


def _wrk() -> Check:
    path = shutil.which("wrk")
    if path:
        return Check("wrk", path, True, severity="ok")
    return Check(
        "wrk",
        "not found",
        False,
        "only needed for the load generator's comparison benchmark and server tests: "
        "`apt-get install wrk`",
    )


def _uvloop() -> Check:
    if importlib.util.find_spec("uvloop") is not None:
        return Check("uvloop", "installed", True, severity="ok")
    return Check(
        "uvloop",
        "not installed",
        False,
        "the uvloop reference backend is skipped: `pip install uvloop` (or the [uvloop] extra)",
    )


def _backend_family(name: str, family: str, what: str) -> Check:
    """Whether a family of backends can run here, with the reason and remedy if not."""
    from servers import registry

    backends = [b for b in registry.all_backends() if b.family == family]
    unavailable = {b.name: r for b in backends if (r := b.unavailable_reason())}
    reasons = sorted(set(unavailable.values()))
    if not backends:
        return Check(name, "not registered", False, f"{what}: no backend of this family")
    if not reasons:
        return Check(name, ", ".join(b.name for b in backends), True, severity="ok")
    if len(unavailable) == len(backends):
        return Check(name, "unavailable", False, f"{what} are skipped: {'; '.join(reasons)}")
    # Some of the family run (the io_uring one may not): name both.
    running = ", ".join(b.name for b in backends if b.name not in unavailable)
    return Check(
        name,
        f"{running}; skipped {', '.join(unavailable)}",
        False,
        f"{', '.join(unavailable)} skipped: {'; '.join(reasons)}",
    )


def _io_uring() -> Check:
    """The io_uring backends' preconditions: kernel switch, io_uring_setup, liburing build."""
    from servers.uring_availability import status

    st = status()
    disabled = "absent (before Linux 6.6)" if st.disabled is None else str(st.disabled)
    err = st.setup_errno
    setup = "ok" if err is None else errno.errorcode.get(err, f"errno {err}")
    value = (
        f"kernel {st.kernel}, kernel.io_uring_disabled {disabled}, io_uring_setup {setup}, "
        f"liburing {st.liburing or 'not built in'}"
    )
    if st.reason is None:
        return Check("io_uring", value, True, severity="ok")
    return Check(
        "io_uring", value, False, f"c-uring and the uring-poll backends are skipped: {st.reason}"
    )


def _c_twins() -> Check:
    from servers import registry

    return _backend_family("C twins", registry.FAMILY_C, "the C twin servers")


def _haproxy() -> Check:
    from servers import registry

    return _backend_family("HAProxy", registry.FAMILY_EXTERNAL, "the haproxy-* backends")


def _load() -> Check:
    one, _, _ = os.getloadavg()
    cores = len(os.sched_getaffinity(0))
    value = f"{one:.2f} (1-min) on {cores} CPUs"
    if one < 0.5 * cores:
        return Check("load average", value, True, severity="ok")
    return Check(
        "load average",
        value,
        False,
        "other work is running: results will be noisier (stop it, or expect flagged cells)",
    )


def run_checks(max_connections: int = 16000) -> list[Check]:
    """All checks, sized for a sweep of up to ``max_connections`` connections per trial."""
    return [
        _cores(),
        _nofile(max_connections + FD_MARGIN),
        _ports(max_connections),
        _somaxconn(),
        _governor(),
        _wrk(),
        _uvloop(),
        _c_twins(),
        _io_uring(),
        _haproxy(),
        _load(),
    ]


class LimitError(RuntimeError):
    """The machine's limits cannot hold the requested sweep; the message gives the remedy."""


def check_limits(max_connections: int) -> None:
    """Raise LimitError before a run if one trial's connections cannot fit.

    Both the server and the load generator hold every connection, each in its
    own process, so each needs ``max_connections`` + a margin of descriptors.
    The soft limit is raised to the hard one first (servers do the same).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = max_connections + FD_MARGIN
    if soft < needed <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if needed > hard:
        raise LimitError(
            f"RLIMIT_NOFILE hard limit is {hard}; the largest trial holds {max_connections} "
            f"connections and needs {needed} descriptors per process: raise it "
            f"(`ulimit -n {needed}` as root, or limits.conf / --ulimit nofile) or choose a "
            f"smaller preset"
        )
    rng = port_range()
    if rng is not None:
        size = rng[1] - rng[0] + 1
        # The load generator spreads connections over many 127.0.0.x source
        # addresses, so the port range bounds connections per address, not in total;
        # one address still needs room for the first ~size connections.
        if max_connections > size * 200:
            raise LimitError(
                f"ephemeral port range {rng[0]}-{rng[1]} ({size} ports) is too small for "
                f"{max_connections} connections: widen net.ipv4.ip_local_port_range"
            )


def format_checks(checks: list[Check]) -> str:
    """Plain-text report: one line per check, then the remedies."""
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.severity == "error" else "warn")
        lines.append(f"[{mark}] {c.name:<{width}}  {c.value}")
    problems = [c for c in checks if not c.ok]
    if problems:
        lines.append("")
        lines.append("Remedies:")
        lines.extend(f"- {c.name}: {c.remedy}" for c in problems)
    else:
        lines.append("")
        lines.append("No problems found.")
    return "\n".join(lines)
