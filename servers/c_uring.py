"""Whether c-uring, the io_uring completion server in C (servers/c/uring_server.c), can
run here: its ``Backend.availability``.

The server itself is the C twins' glue (servers.c_server.make_c_server): the extension's
Loop takes the mechanism ``URING_COMPLETION`` and runs the completion loop instead of a
readiness adapter. What stops io_uring as a whole (the kernel switch, a refused
io_uring_setup, a build without liburing) is servers.uring_availability's to say; this
module adds what only the completion server needs, which the extension's
``uring_completion_probe()`` tries on a throw-away ring: a ring of provided buffers
(Linux 5.19+) and a multishot receive into it (Linux 6.0+).
"""

from __future__ import annotations

import errno
from functools import cache

from servers import uring_availability

# The mechanism name servers._cloop.Loop takes for the completion loop (curing.h's
# CL_URING_COMPLETION) and c-uring's in the registry; bench/analyse/rules/uring.py's
# URING_COMPLETION_MECHANISM names it for the analysis (tests/test_c_uring.py: all agree).
URING_COMPLETION = "uring-completion"
# What each stage of the probe needs from the kernel.
_NEEDS = {
    "setup": "setting up an io_uring ring failed ({failure}): on kernels before 5.12 rings "
    "count against RLIMIT_MEMLOCK: `ulimit -l unlimited`, or a newer kernel",
    "buf_ring": "registering a ring of provided buffers failed ({failure}): the completion "
    "server needs Linux 5.19 or newer",
    "multishot_recv": "a multishot receive into provided buffers did not work ({failure}): "
    "the completion server needs Linux 6.0 or newer",
}


def describe_stage(stage: str, err: int) -> str:
    """The cause and remedy for ``uring_completion_probe()``'s (stage, errno)."""
    failure = errno.errorcode.get(err, str(err)) if err else "no error, wrong result"
    if stage in _NEEDS:
        return _NEEDS[stage].format(failure=failure)
    return f"the io_uring completion server's probe failed at {stage!r} ({failure})"


@cache
def unavailable_reason() -> str | None:
    """None when c-uring can run here, else the cause and the remedy."""
    reason = uring_availability.unavailable_reason()
    if reason is not None:
        return reason
    # Imported here: where the extension is missing the check above has said so.
    from servers.c_server import load_extension

    result = load_extension().uring_completion_probe()
    return None if result is None else describe_stage(*result)
