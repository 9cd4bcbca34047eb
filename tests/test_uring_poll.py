"""io_uring readiness (issue 18, items 1 and 6): the extension's UringPoll keeps the adapter
interface's promises, the uring-poll backends answer byte for byte like the Python epoll
server, and where io_uring cannot run (a seccomp filter refusing io_uring_setup, as
container runtimes install; an extension built without liburing) bench says why and what
to change, and refuses to run them instead of crashing.

The shared matrix (tests/test_servers_*.py) and the C twin tests (tests/test_c_*.py, TWINS
pairs uring-poll with c-uring-poll) run both backends too.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import test_c_servers
from test_c_support import echo_scripts, http_scripts
from test_c_twins import _compare_twins

from servers import registry, uring_availability

REPO = Path(__file__).resolve().parent.parent
URING_BACKENDS = ("uring-poll", "c-uring-poll")
READ, WRITE = 1, 4

# seccomp: refuse io_uring_setup (nr 425 on every architecture) with a chosen errno, as a
# container's profile does. Classic BPF over struct seccomp_data (nr at offset 0).
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x20, 0x15, 0x06
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def refuse_io_uring_setup(err: int):
    """A preexec_fn: the child and everything it starts get `err` from io_uring_setup."""

    def install() -> None:
        program = (_SockFilter * 4)(
            _SockFilter(BPF_LD_W_ABS, 0, 0, 0),
            _SockFilter(BPF_JEQ_K, 0, 1, uring_availability.IO_URING_SETUP),
            _SockFilter(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | err),
            _SockFilter(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
        )
        prog = _SockFprog(len(program), program)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")

    return install


def _bench(args: list[str], err: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=refuse_io_uring_setup(err),
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def _require_uring() -> None:
    reason = uring_availability.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def ring():
    _require_uring()
    from servers.c_server import load_extension

    uring = load_extension().UringPoll()
    yield uring
    uring.close()


# ---------------------------------------------------------------- the adapter's interface


def test_a_multishot_poll_reports_each_wake_up_once(ring) -> None:
    """Edge-triggered: bytes already reported and left unread raise no second completion;
    new bytes do, on the same armed poll."""
    a, b = socket.socketpair()
    with a, b:
        ring.register(a.fileno(), READ)
        assert ring.poll(0) == []
        b.send(b"x")
        assert ring.poll(5) == [(a.fileno(), READ)]
        assert ring.poll(0) == []
        b.send(b"y")
        assert ring.poll(5) == [(a.fileno(), READ)]


def test_modify_rearms_with_the_new_mask_and_zero_disarms(ring) -> None:
    a, b = socket.socketpair()
    with a, b:
        ring.register(a.fileno(), READ)
        ring.modify(a.fileno(), READ | WRITE)  # arming checks readiness: writable now
        assert ring.poll(5) == [(a.fileno(), WRITE)]
        ring.modify(a.fileno(), 0)
        b.send(b"x")
        assert ring.poll(0) == []
        ring.modify(a.fileno(), READ)
        assert ring.poll(5) == [(a.fileno(), READ)]


def test_a_removed_polls_completions_never_reach_the_descriptors_next_owner(ring) -> None:
    """unregister, close, and the number is reused at once: only the new poll reports."""
    a, b = socket.socketpair()
    fd = a.fileno()
    ring.register(fd, READ)
    b.send(b"old")
    ring.unregister(fd)
    a.close()
    c, d = socket.socketpair()
    with b, c, d:
        reused = c if c.fileno() == fd else d
        assert reused.fileno() == fd, "the kernel hands out the lowest free number"
        ring.register(fd, READ)
        assert ring.poll(0.2) == []
        (d if reused is c else c).send(b"new")
        assert ring.poll(5) == [(fd, READ)]


def test_a_listener_closed_after_close_refuses_at_once() -> None:
    """A poll holds a reference to its file and a ring is torn down asynchronously:
    close() cancels every poll first, so a listener closed next stops accepting (without
    it this failed about 1 run in 6). Repeated because the race it guards is short."""
    _require_uring()
    from servers.c_server import load_extension

    for _ in range(20):
        uring = load_extension().UringPoll()
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        uring.register(listener.fileno(), READ)
        assert uring.poll(0) == []
        uring.close()
        listener.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_bad_calls_raise_like_select_epoll(ring) -> None:
    a, b = socket.socketpair()
    with a, b:
        ring.register(a, READ)  # a file object, as select.epoll accepts
        with pytest.raises(FileExistsError):
            ring.register(a.fileno(), READ)
        ring.unregister(a.fileno())
        with pytest.raises(FileNotFoundError):
            ring.unregister(a.fileno())
        with pytest.raises(FileNotFoundError):
            ring.modify(a.fileno(), READ)
        with pytest.raises(ValueError):
            ring.register(-1, READ)
    ring.close()
    assert ring.closed
    with pytest.raises(ValueError, match="closed"):
        ring.poll(0)


def test_each_family_finds_its_uring_poll_backend_by_mechanism() -> None:
    from bench.analyse.families import roles_of

    assert roles_of(registry.FAMILY_PYTHON_LOOP).uring_poll == "uring-poll"
    assert roles_of(registry.FAMILY_C).uring_poll == "c-uring-poll"
    assert roles_of(registry.FAMILY_EXTERNAL).uring_poll is None
    assert registry.get("c-uring-poll").look.marker == registry.get("uring-poll").look.marker


@pytest.mark.parametrize("preset", ["quick", "standard", "tiny", "full"])
def test_of_the_presets_full_plans_the_uring_backends_and_quick_the_c_one(preset: str) -> None:
    """Edge-triggered like epoll-et; quick has room for the C one only (the io_uring
    question's idle-heavy cell), standard for neither."""
    from bench.measure.config import preset_config

    assert all(registry.get(b).edge_triggered for b in URING_BACKENDS)
    planned = set(URING_BACKENDS) & set(preset_config(preset).backends)
    expected = {"full": set(URING_BACKENDS), "quick": {"c-uring-poll"} & set(URING_BACKENDS)}
    assert planned == expected.get(preset, set())


# ---------------------------------------------------------------- byte for byte like epoll


@pytest.mark.parametrize("backend", URING_BACKENDS)
def test_http_answers_match_the_python_epoll_server(start_server, backend: str) -> None:
    _require_uring()
    _compare_twins(start_server, ("epoll", backend), "http", http_scripts())


@pytest.mark.parametrize("backend", URING_BACKENDS)
def test_echo_answers_match_the_python_epoll_server(start_server, backend: str) -> None:
    _require_uring()
    _compare_twins(start_server, ("epoll", backend), "echo", echo_scripts())


# ---------------------------------------------------------------- the C twins' attacks


@pytest.mark.parametrize(
    "attack",
    [
        test_c_servers.test_slowloris_neither_starves_others_nor_spins,
        test_c_servers.test_8_mib_heads_are_refused_with_bounded_memory,
        lambda start_server, backend: test_c_servers.test_reset_storm(
            start_server, backend, "http"
        ),
        lambda start_server, backend: test_c_servers.test_reset_storm(
            start_server, backend, "echo"
        ),
    ],
    ids=["slowloris", "8 MiB heads", "reset storm http", "reset storm echo"],
)
def test_the_python_uring_poll_server_survives_the_c_twins_attacks(start_server, attack) -> None:
    """tests/test_c_servers.py runs these on c-uring-poll; the Python loop on the same
    mechanism meets them too (its EMFILE case is in tests/test_servers_emfile.py)."""
    _require_uring()
    attack(start_server, "uring-poll")


# ---------------------------------------------------------------- where io_uring cannot run


@pytest.mark.parametrize(
    ("err", "remedy"),
    [(errno.EPERM, "seccomp"), (errno.ENOSYS, "CONFIG_IO_URING")],
    ids=["EPERM", "ENOSYS"],
)
def test_doctor_names_a_refused_io_uring_setup_and_its_remedy(err: int, remedy: str) -> None:
    proc = _bench(["doctor", "--connections", "100"], err)
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
    name = errno.errorcode[err]
    line = next(ln for ln in proc.stdout.splitlines() if "] io_uring " in ln)
    assert line.startswith("[warn]") and f"io_uring_setup {name}" in line, line
    remedy_line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("- io_uring:"))
    assert f"io_uring_setup fails with {name}" in remedy_line and remedy in remedy_line
    assert "uring-poll backends are skipped" in remedy_line
    # The C twins that need no io_uring still run; the doctor says which one is skipped.
    c_line = next(ln for ln in proc.stdout.splitlines() if "] C twins " in ln)
    assert "c-epoll" in c_line and "skipped c-uring-poll" in c_line, c_line


@pytest.mark.parametrize("backend", URING_BACKENDS)
def test_bench_run_refuses_a_uring_backend_with_the_reason(backend: str, tmp_path) -> None:
    proc = _bench(
        ["run", "--preset", "tiny", "--backend", backend, "--out", str(tmp_path)], errno.EPERM
    )
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert f"backend {backend}:" in proc.stderr
    assert "io_uring_setup fails with EPERM" in proc.stderr and "seccomp" in proc.stderr
    assert not any(tmp_path.iterdir()), "nothing may be measured or written"


def test_the_kernel_switch_is_named_before_the_system_call(monkeypatch) -> None:
    monkeypatch.setattr(uring_availability, "read_disabled", lambda: 2)
    monkeypatch.setattr(uring_availability, "setup_errno", lambda: errno.EPERM)
    uring_availability.status.cache_clear()
    try:
        reason = registry.get("c-uring-poll").unavailable_reason()
        assert reason is not None and "kernel.io_uring_disabled is 2" in reason
        assert "sysctl -w kernel.io_uring_disabled=0" in reason
        monkeypatch.setattr(uring_availability, "read_disabled", lambda: 1)
        uring_availability.status.cache_clear()
        reason = registry.get("uring-poll").unavailable_reason()
        assert reason is not None and "kernel.io_uring_group" in reason
    finally:
        uring_availability.status.cache_clear()


@pytest.mark.slow  # compiles the extension
def test_a_build_without_liburing_succeeds_and_says_why(tmp_path) -> None:
    """SELECTBENCH_URING=0 builds as a machine without liburing-dev would: the other C
    backends work, the io_uring ones name the missing package."""
    # Neither the compiler nor this check runs sanitized: .ci/sanitize-c preloads ASan into
    # every process, and LeakSanitizer fails cc1 on its own leaks (the build then only warns).
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env["SELECTBENCH_URING"] = "0"
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--force",
         "--build-lib", str(tmp_path / "lib"), "--build-temp", str(tmp_path / "tmp")],
        cwd=REPO, env=env, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (so,) = (tmp_path / "lib" / "servers").glob("_cloop*.so")
    script = (
        "from servers import registry, c_server; m = c_server.load_extension(); "
        "print(m.LIBURING, 'uring-poll' in m.MECHANISMS); "
        "print(registry.get('c-epoll').unavailable_reason()); "
        "print(registry.get('c-uring-poll').unavailable_reason()); "
        "print(registry.get('c-uring').unavailable_reason())\n"
        "try:\n"
        "    m.Loop(mechanism='uring-completion', listen_fd=0, wake_fd=0, wake_write_fd=0,"
        " http=True, http_close=False, instrumentation=True, max_queued_bytes=1,"
        " max_head_bytes=64, sample_seed=0)\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**env, "SELECTBENCH_CLOOP": str(so), "PYTHONPATH": str(REPO)},
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.splitlines()
    assert out[:2] == ["None False", "None"], out
    assert "built without io_uring" in out[2] and "apt-get install liburing-dev" in out[2]
    assert out[3] == out[2], "c-uring is built with the io_uring sources, or not at all"
    assert "'uring-completion' needs io_uring" in out[4] and "liburing-dev" in out[4], out
