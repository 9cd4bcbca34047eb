"""bench doctor: every check is reported, and a limit too low comes with its remedy."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

from bench.measure.machine.doctor import LimitError, check_limits, format_checks, run_checks

REPO = Path(__file__).resolve().parent.parent
CHECK_NAMES = (
    "cores",
    "RLIMIT_NOFILE",
    "ephemeral ports",
    "somaxconn",
    "CPU governor",
    "wrk",
    "uvloop",
    "load average",
)


def doctor(limit_nofile: int | None = None) -> subprocess.CompletedProcess[str]:
    def lower_limit() -> None:
        if limit_nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit_nofile, limit_nofile))

    return subprocess.run(
        [sys.executable, "-m", "bench", "doctor"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lower_limit,
    )


def test_doctor_reports_every_check() -> None:
    proc = doctor()
    assert proc.returncode in (0, 1), proc.stderr
    for name in CHECK_NAMES:
        assert name in proc.stdout
    assert "Remedies:" in proc.stdout or "No problems found." in proc.stdout


def test_doctor_names_the_remedy_for_a_low_descriptor_limit() -> None:
    proc = doctor(limit_nofile=1024)
    assert proc.returncode == 1, proc.stdout
    line = next(ln for ln in proc.stdout.splitlines() if "RLIMIT_NOFILE" in ln and "soft" in ln)
    assert line.startswith("[FAIL]") and "hard 1024" in line
    assert "ulimit -n" in proc.stdout


def test_every_problem_has_a_remedy() -> None:
    for check in run_checks(max_connections=10**6):
        assert check.ok or check.remedy, check
    text = format_checks(run_checks(max_connections=10**6))
    assert "RLIMIT_NOFILE" in text and "Remedies:" in text


def test_check_limits_refuses_a_sweep_beyond_the_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        check_limits(hard + 1)
    except LimitError as exc:
        assert "RLIMIT_NOFILE" in str(exc) and "ulimit -n" in str(exc)
    else:
        raise AssertionError("check_limits accepted more connections than the hard limit")
    check_limits(100)  # a small sweep fits


def test_doctor_names_a_missing_family_with_its_remedy(monkeypatch) -> None:
    from bench.measure.machine import doctor
    from servers import registry

    def reason(self: registry.Backend) -> str | None:
        return (
            "haproxy is not installed: apt-get install haproxy"
            if self.family == "external"
            else None
        )

    monkeypatch.setattr(registry.Backend, "unavailable_reason", reason)
    checks = {c.name: c for c in doctor.run_checks(100)}
    assert checks["C twins"].ok
    assert not checks["HAProxy"].ok and "apt-get install haproxy" in checks["HAProxy"].remedy
