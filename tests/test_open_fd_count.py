"""bench.measure.placement.open_fd_count: a server's open descriptors, counted cheaply."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from bench.measure import placement

HOLD = (
    "import os, sys\n"
    "fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(int(sys.argv[1]))]\n"
    "print('ready', flush=True)\n"
    "sys.stdin.read()\n"
)


@pytest.fixture
def holder() -> Iterator[psutil.Process]:
    """A child process holding 300 extra descriptors until its stdin closes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, "300"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        yield psutil.Process(proc.pid)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_counts_what_listing_the_descriptors_counts(holder: psutil.Process) -> None:
    count = placement.open_fd_count(holder)
    assert count >= 300
    assert count == holder.num_fds()


def test_falls_back_to_listing_where_the_kernel_gives_no_count(
    holder: psutil.Process, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_stat = os.stat

    def no_size(path: str, *args: object, **kwargs: object) -> os.stat_result:
        if str(path).endswith("/fd"):
            raise PermissionError(path)
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(placement.os, "stat", no_size)
    assert placement.open_fd_count(holder) == holder.num_fds() >= 300


def test_a_process_that_is_gone_raises_psutil_error(holder: psutil.Process) -> None:
    holder.kill()
    holder.wait(5)
    with pytest.raises(psutil.Error):
        placement.open_fd_count(holder)
