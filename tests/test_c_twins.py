"""Byte-identical behaviour: each Python event-loop backend and its C twin
(select/c-select, poll/c-poll, epoll/c-epoll, epoll-et/c-epoll-et) receive the same
byte streams and must answer exactly the same bytes, end the connection the same way,
and count the same requests and bytes (issue 10, item 2).

The streams (tests/test_c_support.py): keep-alive, pipelining, Connection: close,
HTTP/1.0, heads and bodies split across sends, garbage, an oversized head, 405/413/501,
Content-Length as RFC 9110's 1*DIGIT, a 5,000-deep pipeline, a client that stops
reading and resumes; for echo, 1 MiB payloads, sizes in a row, 16 MiB sent while not
reading, half-close.
"""

from __future__ import annotations

import pytest
from test_c_support import (
    TWINS,
    Step,
    Transcript,
    converse,
    echo_scripts,
    http_close_scripts,
    http_scripts,
)
from test_servers_support import wait_idle

from servers import registry

# Counters that follow from the bytes alone (echo's `requests` counts reads, which
# depend on how the kernel splits the stream, so it is compared for HTTP only).
SAME_COUNTERS = ("bytes_in", "bytes_out", "accepted", "closed", "errors", "rejected_fd_setsize")


def _play(srv, steps: list[Step], protocol: str) -> tuple[Transcript, dict[str, int]]:
    before = wait_idle(srv)
    transcript = converse(srv.port, steps)
    after = wait_idle(srv)
    delta = before.delta(after)
    names = (*SAME_COUNTERS, "requests") if protocol == "http" else SAME_COUNTERS
    return transcript, {name: getattr(delta, name) for name in names}


def _compare_twins(start_server, twin: tuple[str, str], protocol: str, scripts, **kw) -> None:
    python_name, c_name = twin
    reason = registry.get(c_name).unavailable_reason()
    if reason:
        pytest.skip(reason)
    python_srv = start_server(python_name, protocol, **kw)
    c_srv = start_server(c_name, protocol, **kw)
    differences = []
    for name, steps in scripts.items():
        py_transcript, py_counts = _play(python_srv, steps, protocol)
        c_transcript, c_counts = _play(c_srv, steps, protocol)
        if py_transcript != c_transcript:
            differences.append(f"{name}: {py_transcript.describe_difference(c_transcript)}")
        elif py_counts != c_counts:
            differences.append(f"{name}: counters {py_counts} vs {c_counts}")
    assert not differences, f"{python_name} vs {c_name} ({protocol}):\n" + "\n".join(differences)
    assert python_srv.is_alive() and c_srv.is_alive()


@pytest.mark.parametrize("twin", TWINS, ids=[c for _, c in TWINS])
def test_http_answers_are_byte_identical(start_server, twin: tuple[str, str]) -> None:
    _compare_twins(start_server, twin, "http", http_scripts())


@pytest.mark.parametrize("twin", TWINS, ids=[c for _, c in TWINS])
def test_http_close_mode_answers_are_byte_identical(start_server, twin: tuple[str, str]) -> None:
    _compare_twins(start_server, twin, "http", http_close_scripts(), http_close=True)


@pytest.mark.parametrize("twin", TWINS, ids=[c for _, c in TWINS])
def test_echo_answers_are_byte_identical(start_server, twin: tuple[str, str]) -> None:
    _compare_twins(start_server, twin, "echo", echo_scripts())
