"""One benchmark per machine: a second run waits for the first, naming it, or refuses at once.

The lock file is private to each test (SELECTBENCH_LOCK), so a real run on this
machine neither waits for these tests nor blocks them. The end-to-end test makes
the first run hold the lock for as long as it needs, without a race: once the
first run has written its run id into the lock it is stopped (SIGSTOP), and
continued only after the others have answered.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from bench.analyse.flags import left_out_count
from bench.commands.run_lock import EXIT_BUSY
from bench.measure.machine.lock import LOCK_PATH_ENV, MachineBusy, acquire, read_holder
from bench.store.results import load

REPO = Path(__file__).resolve().parent.parent
HOLD = (
    "import sys, fcntl; f = open(sys.argv[1], 'w'); fcntl.flock(f, fcntl.LOCK_EX); "
    "print('held', flush=True); sys.stdin.read()"
)


def test_a_second_taker_is_refused_with_the_holder_named(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    notes: list[str] = []
    first = acquire("tiny", wait=False, note=notes.append, path=path)
    try:
        first.record("20261206-000000_abcd")
        with pytest.raises(MachineBusy) as busy:
            acquire("quick", wait=False, note=notes.append, path=path)
        text = str(busy.value)
        assert "20261206-000000_abcd" in text and f"PID {os.getpid()}" in text
        assert "preset tiny" in text and "running for" in text
    finally:
        first.release()
    again = acquire("quick", wait=False, note=notes.append, path=path)
    again.release()
    assert notes == []  # nobody had to wait


def test_a_killed_holder_never_blocks_the_next_run(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(MachineBusy):
            acquire("tiny", wait=False, note=print, path=path)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    acquire("tiny", wait=False, note=print, path=path).release()


def _lines(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


def _bench(out: Path, lock: Path, *extra: str) -> subprocess.Popen[str]:
    argv = ["run", "--preset", "tiny", "--no-charts", "--out", str(out)]
    argv += ["--scenario", "active-scaling", "--backend", "epoll", *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "bench", *argv],
        cwd=REPO,
        env=dict(os.environ, **{LOCK_PATH_ENV: str(lock)}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _end(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            with_pid = proc.pid
            os.kill(with_pid, signal.SIGCONT)
            os.kill(with_pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.slow
def test_two_runs_at_once_the_second_refuses_or_waits_naming_the_first(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    first = _bench(tmp_path / "first", lock)
    started = [first]
    try:
        deadline = time.monotonic() + 120
        holder = read_holder(lock)
        while (holder is None or holder.run_id is None) and time.monotonic() < deadline:
            if first.poll() is not None:
                pytest.fail(f"the first run ended early: {first.communicate()[1]}")
            time.sleep(0.05)
            holder = read_holder(lock)
        if holder is None or holder.run_id is None:
            pytest.fail("the first run never recorded its run id in the lock")
        os.kill(first.pid, signal.SIGSTOP)  # it holds the lock until continued
        assert holder.pid == first.pid

        refused = _bench(tmp_path / "refused", lock, "--no-wait")
        started.append(refused)
        _, stderr = refused.communicate(timeout=120)
        assert refused.returncode == EXIT_BUSY, stderr
        message = [line for line in stderr.splitlines() if line.startswith("bench: error:")]
        assert len(message) == 1, stderr
        assert holder.run_id in message[0] and f"PID {first.pid}" in message[0]
        assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())

        waiting = _bench(tmp_path / "waiting", lock)
        started.append(waiting)
        assert waiting.stderr is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_lines, args=(waiting.stderr, lines), daemon=True).start()
        said = lines.get(timeout=120)  # its first words are whom it waits for
        assert "waiting for the machine" in said, said
        assert holder.run_id in said and f"PID {first.pid}" in said
        assert not (tmp_path / "waiting").exists() or not any((tmp_path / "waiting").iterdir())

        os.kill(first.pid, signal.SIGCONT)
        stdout, _ = first.communicate(timeout=180)
        assert first.returncode == 0
        # The console's count is every finished trial the verdict leaves out.
        (run,) = list((tmp_path / "first").iterdir())
        said_flagged = re.search(r"\((\d+) failed, (\d+) flagged\)", stdout)
        assert said_flagged is not None, stdout
        assert int(said_flagged.group(2)) == left_out_count(load(run).trials)
        waiting.wait(timeout=180)
        assert waiting.returncode == 0
        rest = []
        while not lines.empty():
            rest.append(lines.get())
        assert any("the machine is free" in line for line in rest), rest
        runs = list((tmp_path / "waiting").iterdir())
        assert len(runs) == 1
        assert json.loads((runs[0] / "run.json").read_text())["status"] == "complete"
    finally:
        _end(started)


def test_a_dry_run_measures_nothing_and_never_takes_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.commands import main as bench_main

    lock = tmp_path / "lock"
    monkeypatch.setenv(LOCK_PATH_ENV, str(lock))
    held = acquire("quick", wait=False, note=print, path=lock)
    try:
        argv = ["run", "--preset", "tiny", "--dry-run", "--no-wait", "--out", str(tmp_path)]
        assert bench_main(argv) == 0  # --no-wait would have refused, had it asked
    finally:
        held.release()
