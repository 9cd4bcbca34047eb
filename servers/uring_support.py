"""Why the io_uring completion server (c-uring) cannot run here, in words: the cause and
the remedy for each failure servers._cloop.uring_probe() reports. Plain Python, so the
wording is importable (and testable) where the extension or io_uring is missing.
"""

from __future__ import annotations

import errno
import os

BUILD_HINT = "apt-get install liburing-dev, then pip install -e . again"
# kernel.io_uring_disabled (Linux 6.6+): 0 allows io_uring, 1 only for the group in
# kernel.io_uring_group (and root), 2 for nobody.
DISABLED_SYSCTL = "/proc/sys/kernel/io_uring_disabled"


def _sysctl(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _setup_refused(err: int) -> str:
    """Why io_uring_setup failed with ``err``, and what to do about it."""
    name = errno.errorcode.get(err, str(err))
    if err == errno.ENOSYS:
        return (
            "io_uring_setup is not implemented by this kernel (ENOSYS): use a kernel built "
            "with CONFIG_IO_URING=y, Linux 6.0 or newer"
        )
    if err == errno.EPERM:
        disabled = _sysctl(DISABLED_SYSCTL)
        if disabled not in (None, "0"):
            return (
                f"io_uring_setup is refused (EPERM): kernel.io_uring_disabled is {disabled}; "
                "allow it with sysctl -w kernel.io_uring_disabled=0 (or add this user to "
                "kernel.io_uring_group when it is 1)"
            )
        return (
            "io_uring_setup is refused (EPERM) while kernel.io_uring_disabled allows it: a "
            "seccomp filter (a container's default profile) blocks the call; run outside the "
            "container or with a profile that allows io_uring_setup, io_uring_enter and "
            "io_uring_register"
        )
    return f"io_uring_setup failed ({name}: {os.strerror(err)}): check ulimit -l and dmesg"


def describe_probe(result: tuple[str, int] | None) -> str | None:
    """The sentence for ``servers._cloop.uring_probe()``'s result; None when it can run."""
    if result is None:
        return None
    stage, err = result
    failure = f"{errno.errorcode.get(err, err)}" if err else "no error, wrong result"
    if stage == "build":
        return (
            f"servers._cloop was built without liburing, so it has no io_uring server: {BUILD_HINT}"
        )
    if stage == "setup":
        return _setup_refused(err)
    if stage == "buf_ring":
        return (
            f"registering a ring of provided buffers failed ({failure}): the completion "
            "server needs Linux 5.19 or newer"
        )
    if stage == "multishot_recv":
        return (
            f"a multishot receive into provided buffers did not work ({failure}): the "
            "completion server needs Linux 6.0 or newer"
        )
    return f"the io_uring probe failed at {stage!r} ({failure})"
