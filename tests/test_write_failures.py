"""Write failures are errors, not tracebacks: a full disk or a read-only folder stops the run
with one message, keeps every finished trial, and the run reads as failed (issue 20)."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.tiny_run import REPO, RUN_TIMEOUT_S

from bench.commands import main
from bench.present.listing import list_runs
from bench.store import schema, writer
from bench.store.results import RunWriteError, available_runs, create_run, load

# A tiny run's tables, reserve and a few raw trial documents fit, its 20 trials do not
# (each raw document is about 10 kB and the parquet table about 45 kB).
TMPFS_SIZE = "256k"
DONE_LINE = re.compile(r"^\[\d+/\d+\] .*: (ok|failed)")


def _errors(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("bench: error:")]


def _trial_files(run: Path) -> list[Path]:
    return [p for p in (run / schema.RAW_DIR).glob("0*.json")]


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of TMPFS_SIZE mounted for the test (root only), unmounted after it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the injected variant covers this")
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.slow
def test_tiny_run_onto_a_filesystem_that_fills_up(small_filesystem: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--preset", "tiny", "--out", str(small_filesystem)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    errors = _errors(proc.stderr)
    (run,) = available_runs(small_filesystem)
    listed = subprocess.run(
        [sys.executable, "-m", "bench", "list", "--results-dir", str(small_filesystem)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    kept = shutil.copytree(run, tmp_path / "kept" / run.name)

    assert proc.returncode == 1 and len(errors) == 1, proc.stderr
    assert "No space left on device" in errors[0] and str(run) in errors[0]
    trials = len(_trial_files(run))
    assert 0 < trials < 20 and f"Kept: {trials} finished trials" in errors[0]
    # Every trial the console reported finished is kept (one more may be, if its table failed).
    reported = [line for line in proc.stderr.splitlines() if DONE_LINE.match(line)]
    assert len(reported) in (trials - 1, trials)
    assert len(load(kept).trials) == trials
    assert listed.returncode == 0 and "Traceback" not in listed.stderr
    status = listed.stdout.splitlines()[1]
    assert ("failed: cannot write" in status or "interrupted" in status) and "running" not in status


class FillingDisk:
    """atomic_write_bytes on a disk that fills after ``fit`` raw trial documents: every write
    fails with ENOSPC until the run gives its reserve back."""

    def __init__(self, fit: int, error: int = errno.ENOSPC, forever: bool = False) -> None:
        self.real = writer.atomic_write_bytes
        self.fit = fit
        self.error = error
        self.forever = forever
        self.raw_written = 0
        self.full = False

    def __call__(self, path: Path, data: bytes) -> None:
        run = path.parent.parent if path.parent.name == schema.RAW_DIR else path.parent
        if path.parent.name == schema.RAW_DIR and self.raw_written == self.fit:
            self.full = True
        reserve_held = (run / schema.RESERVE_FILE).exists()
        if self.full and (reserve_held or self.forever):
            raise OSError(self.error, os.strerror(self.error))
        self.real(path, data)
        self.raw_written += path.parent.name == schema.RAW_DIR


@pytest.fixture
def sigterm_kept() -> Iterator[None]:
    """`bench run` in-process installs its SIGTERM handler: put pytest's back after."""
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


@pytest.mark.slow
def test_injected_full_disk_stops_the_run_with_one_error_and_keeps_the_trials(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sigterm_kept: None,
) -> None:
    monkeypatch.setattr(writer, "atomic_write_bytes", FillingDisk(fit=2))
    args = ["run", "--preset", "tiny", "--scenario", "idle-scaling", "--backend", "epoll"]

    code = main([*args, "--out", str(tmp_path), "--no-charts"])

    errors = _errors(capsys.readouterr().err)
    (run,) = available_runs(tmp_path)
    meta = json.loads((run / schema.RUN_JSON).read_text())
    assert code == 1 and len(errors) == 1
    assert "No space left on device" in errors[0] and "Kept: 2 finished trials" in errors[0]
    assert "run.json records the run as failed" in errors[0] and "Remedy: free space" in errors[0]
    assert meta["status"] == "failed" and meta["failure"].startswith("cannot write raw/0002_")
    assert len(_trial_files(run)) == 2 and len(load(run).trials) == 2
    assert list_runs(tmp_path).iloc[0]["status"].startswith("failed: cannot write raw/0002_")
    assert not (run / schema.RESERVE_FILE).exists()


@pytest.mark.parametrize(
    ("error", "remedy"),
    [(errno.EROFS, "make its filesystem writable"), (errno.EACCES, "give this user write")],
)
def test_a_folder_that_turns_unwritable_is_a_failure_run_json_cannot_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int, remedy: str
) -> None:
    disk = FillingDisk(fit=1, error=error, forever=True)
    monkeypatch.setattr(writer, "atomic_write_bytes", disk)
    run = create_run(tmp_path, "tiny", {}, {}, {})
    run.append_trial({"order_index": 0, "raw_file": run.write_raw_json("0000_t.json", {"row": {}})})

    with pytest.raises(RunWriteError) as caught, run:
        run.write_raw_json("0001_t.json", {"row": {}})

    message = str(caught.value)
    assert caught.value.recorded is False and "run.json could not record the failure" in message
    assert f"cannot write raw/0001_t.json in {run.path}" in message and remedy in message
    assert "Kept: 1 finished trials" in message
    assert json.loads((run.path / schema.RUN_JSON).read_text())["status"] == "running"
