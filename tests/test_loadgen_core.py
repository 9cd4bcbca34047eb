"""The load generator's compiled core (loadgen._cload): its reply rules agree with
loadgen.protocols, its open-loop timing with a fake clock, and its loop on socketpairs.

Behaviour only: what it sends, records and hands back; never how fast.
"""

from __future__ import annotations

import array
import errno
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from loadgen.core import load_core
from loadgen.protocols import BAD, COMPLETE, INCOMPLETE, http_closes, parse_echo, parse_http

cload = load_core()
pytestmark = pytest.mark.skipif(cload is None, reason="loadgen._cload is not built")
SEND, SLEEP, SPIN, UNTIL = 0, 1, 2, 3

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!"
ANSWERS = [
    OK,
    b"HTTP/1.1 200 OK\r\nDate: Sun, 06 Dec 2026 02:00:00 GMT\r\ncontent-length:  2 \r\n\r\nhi",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\n\r\n",
    b"HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy",
    OK + b"HTTP/1.1",
    b"x" * (64 * 1024 + 1),
]


def _split_points(answer: bytes) -> list[int]:
    """Every split point of a short answer; of the 64 KiB one, the first and last 2 KiB
    (the start and the head cap) and every 509th between (every prefix would be 65,537
    parses in Python, seconds for nothing the neighbours do not show)."""
    n = len(answer)
    if n <= 4096:
        return list(range(n + 1))
    return sorted({*range(2048), *range(0, n, 509), *range(n - 2048, n + 1)})


def _python_verdict(buf: bytes) -> str:
    status, _ = parse_http(buf)
    if status == COMPLETE:
        return "close" if http_closes(buf) else "keep"
    return {INCOMPLETE: "incomplete", BAD: "bad"}[status]


@pytest.mark.parametrize("answer", ANSWERS, ids=range(len(ANSWERS)))
def test_the_core_acts_alone_only_where_the_protocol_rules_agree(answer: bytes) -> None:
    """At every split point: the core's INCOMPLETE is Python's, its COMPLETE is Python's
    COMPLETE without a close; all else it defers (Python decides on the same bytes)."""
    assert cload is not None
    for end in _split_points(answer):
        buf = answer[:end]
        verdict = cload.http_reply(buf)
        if verdict == cload.INCOMPLETE:
            assert _python_verdict(buf) == "incomplete", buf
        elif verdict == cload.COMPLETE:
            assert _python_verdict(buf) == "keep", buf
        else:
            assert verdict == cload.DEFER


@pytest.mark.parametrize("answer", ANSWERS, ids=range(len(ANSWERS)))
def test_churn_completes_only_where_parse_http_does(answer: bytes) -> None:
    """A churn connection ends after its answer: parse_http alone decides, so a
    Connection: close or HTTP/1.0 answer completes in the core too."""
    assert cload is not None
    for end in _split_points(answer):
        buf = answer[:end]
        verdict = cload.http_reply(buf, True)
        python = parse_http(buf)[0]
        if verdict == cload.INCOMPLETE:
            assert python == INCOMPLETE, buf
        elif verdict == cload.COMPLETE:
            assert python == COMPLETE, buf
    for closing in ANSWERS[4:8]:
        assert cload.http_reply(closing, True) == cload.COMPLETE


def test_plain_keepalive_answers_stay_in_the_core() -> None:
    """The fast path engages on the reference servers' answers, split or whole."""
    assert cload is not None
    for answer in ANSWERS[:4]:
        assert cload.http_reply(answer) == cload.COMPLETE
        assert cload.http_reply(answer[:-1]) == cload.INCOMPLETE
    for closing in ANSWERS[4:8]:
        assert cload.http_reply(closing) == cload.DEFER


def test_echo_completes_at_the_request_size_and_defers_anything_else() -> None:
    assert cload is not None
    req = b"0123456789abcdef"
    for buf in (b"", req[:5], req, req + b"x", b"X" + req[1:]):
        verdict = cload.echo_reply(buf, req)
        python = parse_echo(buf, req)[0]
        assert (verdict == cload.INCOMPLETE) == (python == INCOMPLETE)
        assert (verdict == cload.COMPLETE) == (python == COMPLETE)


# ----------------------------------------------------------- timing, fake clock
def _send_time(
    due: int, oversleep: int, spin: int, poll_cost: int = 1_000, nap: int | None = None,
    nap_oversleep: int = 0,
) -> int:  # fmt: skip
    """When the core's plan sends a request due at ``due``, on a fake clock whose sleeps
    end ``oversleep`` late (naps, sleeps of at most the nap, ``nap_oversleep``) and whose
    non-blocking polls take ``poll_cost``."""
    assert cload is not None
    nap = cload.NAP_NS if nap is None else nap
    now, until = 0, 10 * due
    for _ in range(100_000):
        action, ns = cload.wait_plan(now, due, until, spin, nap)
        if action == SEND:
            return now
        assert action in (SLEEP, SPIN)
        if action == SPIN:
            now += poll_cost
        else:
            now += ns + (nap_oversleep if nap > 0 and ns <= nap else oversleep)
    raise AssertionError("the plan never sent")


@pytest.mark.parametrize("nap", [0, None])
@pytest.mark.parametrize("oversleep", [0, 5_000, 49_000])
def test_a_wake_up_within_the_spin_margin_sends_on_time(oversleep: int, nap: int | None) -> None:
    """Sleep (and nap) to spin_ns before the send, then spin: lateness is one poll at most."""
    due, spin = 1_000_000, 50_000
    sent = _send_time(due, oversleep, spin, nap=nap, nap_oversleep=oversleep)
    assert 0 <= sent - due <= 1_000


def test_a_wake_up_later_than_the_margin_is_late_by_the_excess() -> None:
    due, spin = 1_000_000, 50_000
    assert _send_time(due, 80_000, spin, nap=0) - due == 30_000
    # Without a spin margin the whole wake-up error is send lag.
    assert _send_time(due, 20_000, 0, nap=0) - due == 20_000


@pytest.mark.parametrize("oversleep", [80_000, 200_000, 290_000])
def test_the_naps_absorb_a_long_sleep_that_wakes_late(oversleep: int) -> None:
    """The long sleep ends NAP_HORIZON_NS before the spin: waking that late (or less) is
    made up by sleeping shorter naps, which the VM wakes on time."""
    assert cload is not None
    due, spin = 1_000_000, 50_000
    assert 0 <= _send_time(due, oversleep, spin) - due <= 1_000
    # The same late wake-up without naps is send lag.
    assert _send_time(due, oversleep, spin, nap=0) - due == oversleep - spin
    # Later than the horizon: late by the excess.
    late = cload.NAP_HORIZON_NS + spin + 20_000
    assert _send_time(due, late, spin) - due == 20_000


def test_the_plan_sleeps_to_the_horizon_naps_spins_and_stops_at_the_deadline() -> None:
    assert cload is not None
    horizon, nap = cload.NAP_HORIZON_NS, cload.NAP_NS
    assert (horizon, nap) == (300_000, 100_000)
    assert cload.wait_plan(0, 1_000_000, 5_000_000, 50_000) == (SLEEP, 650_000)
    assert cload.wait_plan(0, 1_000_000, 5_000_000, 50_000, 0) == (SLEEP, 950_000)
    assert cload.wait_plan(650_000, 1_000_000, 5_000_000, 50_000) == (SLEEP, nap)
    assert cload.wait_plan(900_000, 1_000_000, 5_000_000, 50_000) == (SLEEP, 50_000)
    assert cload.wait_plan(960_000, 1_000_000, 5_000_000, 50_000) == (SPIN, 0)
    assert cload.wait_plan(1_000_000, 1_000_000, 5_000_000, 50_000) == (SEND, 0)
    # The deadline (a tick) needs no spin nor nap; a send due after it waits for the
    # next run.
    assert cload.wait_plan(0, 9_000_000, 5_000_000, 50_000) == (SLEEP, 5_000_000)
    assert cload.wait_plan(5_000_000, 9_000_000, 5_000_000, 50_000) == (UNTIL, 0)
    assert cload.wait_plan(5_000_000, 5_000_000, 5_000_000, 50_000) == (UNTIL, 0)


def test_a_run_goes_past_its_tick_only_for_a_send_due_within_the_room() -> None:
    """A send due within room_ns after the tick is made first (then the run returns, and
    the tick's work cannot make it late); a later one, or no room, stops at the tick."""
    assert cload is not None
    until, room = 5_000_000, 1_000_000
    assert cload.tick_end(until, room, 5_400_000) == 5_400_001
    assert cload.tick_end(until, room, until) == until + 1
    assert cload.tick_end(until, room, 6_000_000) == until  # at the room's end: not waited for
    assert cload.tick_end(until, room, 4_000_000) == until  # due before the tick: sent anyway
    assert cload.tick_end(until, 0, 5_400_000) == until
    assert cload.tick_end(until, room, 2**63 - 1) == until  # nothing pending
    # The plan then sends at the due time and stops once past the tick with nothing near.
    end = cload.tick_end(until, room, 5_400_000)
    assert cload.wait_plan(5_000_000, 5_400_000, end, 50_000)[0] == SLEEP
    assert cload.wait_plan(5_400_000, 5_400_000, end, 50_000) == (SEND, 0)
    after = cload.tick_end(until, room, 7_400_000)
    assert cload.wait_plan(5_400_010, 7_400_000, after, 50_000) == (UNTIL, 0)


def test_a_late_answer_sends_the_next_request_at_once_and_counts_the_lag() -> None:
    """wrk2's schedule: the next intended time is the previous plus the interval, never
    the answer's time; an answer after it sends at once, late by the difference."""
    assert cload is not None
    assert cload.next_intended(1_000, 500, 1_200) == (1_500, False, 0)
    assert cload.next_intended(1_000, 500, 1_500) == (1_500, True, 0)
    assert cload.next_intended(1_000, 500, 1_800) == (1_500, True, 300)


# ------------------------------------------------------------ the loop itself
class Rig:
    """A core over socketpairs: ``client`` fds are the core's, ``server`` ends the test's."""

    def __init__(self, module: ModuleType, n: int, *, http: bool, open_loop: bool,
                 request: bytes, interval_ns: int = 0, poll_ns: int = 0) -> None:  # fmt: skip
        self.ep = select.epoll()
        self.pairs = [socket.socketpair() for _ in range(n)]
        self.client = [a.fileno() for a, _ in self.pairs]
        self.server = [b for _, b in self.pairs]
        for a, b in self.pairs:
            a.setblocking(False)
            b.settimeout(5.0)
            self.ep.register(a.fileno(), select.EPOLLIN)
        size = max(self.client) + 1
        self.alive = bytearray(size)
        for fd in self.client:
            self.alive[fd] = 1
        self.sent = array.array("q", [0] * size)
        self.intended = array.array("q", [0] * size)
        self.request = request
        self.core = module.KeepAliveCore(
            epoll_fd=self.ep.fileno(), request=request, http=http, open_loop=open_loop,
            interval_ns=interval_ns, poll_ns=poll_ns,
        )  # fmt: skip

    def run(self, within_s: float, max_completed: int = 0) -> tuple[int, list[tuple]]:
        until = time.monotonic_ns() + int(within_s * 1e9)
        return self.core.run(self.alive, self.sent, self.intended, until, max_completed)

    def close(self) -> None:
        for a, b in self.pairs:
            a.close()
            b.close()
        self.ep.close()


@pytest.fixture
def rig() -> Iterator[type[Rig]]:
    made: list[Rig] = []

    def factory(*args: object, **kw: object) -> Rig:
        assert cload is not None
        r = Rig(cload, *args, **kw)  # type: ignore[arg-type]
        made.append(r)
        return r

    yield factory  # type: ignore[misc]
    for r in made:
        r.close()


@pytest.mark.parametrize("poll_ns", [0, 30_000])
def test_closed_loop_answers_are_timed_and_followed_by_the_next_request(
    rig: type[Rig], poll_ns: int
) -> None:
    r = rig(2, http=True, open_loop=False, request=b"GET / HTTP/1.1\r\n\r\n", poll_ns=poll_ns)
    fd = r.client[0]
    r.sent[fd] = time.monotonic_ns()
    r.server[0].sendall(OK[:20])  # split: the core keeps the partial
    completed, events = r.run(0.05)
    assert (completed, events) == (0, [])
    r.server[0].sendall(OK[20:])
    completed, events = r.run(5.0, max_completed=1)
    assert (completed, events) == (1, [])
    assert r.server[0].recv(100) == r.request  # the next request went out at once
    assert r.sent[fd] > 0
    corrected, uncorrected, lag = r.core.take_counts()
    assert sum(corrected.values()) == 1 and not uncorrected and not lag
    assert r.core.take_counts() == ({}, {}, {})  # taken once


def test_what_the_core_cannot_decide_goes_back_with_every_byte(rig: type[Rig]) -> None:
    r = rig(3, http=True, open_loop=False, request=b"GET / HTTP/1.1\r\n\r\n")
    now = time.monotonic_ns()
    for fd in r.client:
        r.sent[fd] = now
    closing = ANSWERS[4]
    r.server[0].sendall(closing[:10])
    assert r.run(0.05) == (0, [])
    r.server[0].sendall(closing[10:])
    _, events = r.run(5.0)
    assert [(e[0], e[1], e[2], e[4], e[5]) for e in events] == [
        (r.client[0], None, closing, None, 0)
    ]
    r.server[1].sendall(OK[:30])
    assert r.run(0.05) == (0, [])
    r.server[1].shutdown(socket.SHUT_WR)  # EOF mid-answer: the partial goes back with it
    _, events = r.run(5.0)
    assert [(e[0], e[1], e[2]) for e in events] == [(r.client[1], OK[:30], b"")]
    r.ep.unregister(r.client[1])  # as the worker's slow path drops it
    r.alive[r.client[2]] = 0  # not the core's (a reconnect in flight): nothing is read
    r.server[2].sendall(b"x")
    _, events = r.run(5.0)
    assert [(e[0], e[2]) for e in events] == [(r.client[2], None)]
    assert os.read(r.client[2], 10) == b"x"


def test_the_drain_gets_what_the_core_still_holds(rig: type[Rig]) -> None:
    r = rig(1, http=False, open_loop=False, request=b"0123456789")
    fd = r.client[0]
    r.sent[fd] = time.monotonic_ns()
    r.server[0].sendall(b"01234")
    assert r.run(0.05) == (0, [])
    assert r.core.export() == {fd: (b"01234", None)}
    assert r.core.export() == {}
    r.core.set_partial(fd, b"01234")
    r.server[0].sendall(b"56789")
    assert r.run(5.0, max_completed=1) == (1, [])


def test_open_loop_sends_at_the_intended_time_never_before(rig: type[Rig]) -> None:
    interval = 20_000_000
    r = rig(2, http=True, open_loop=True, request=b"GET / HTTP/1.1\r\n\r\n",
            interval_ns=interval)  # fmt: skip
    due = time.monotonic_ns() + 30_000_000
    for i, fd in enumerate(r.client):
        r.intended[fd] = due + i * 20_000_000
    until = due + 15_000_000  # the second send is due after the run: it waits
    assert r.core.run(r.alive, r.sent, r.intended, until) == (0, [])
    first, second = r.client
    assert r.sent[first] >= r.intended[first] == due
    assert r.sent[second] == 0
    assert r.server[0].recv(100) == r.request
    r.server[0].sendall(OK)
    completed, events = r.run(5.0, max_completed=1)
    assert (completed, events) == (1, [])
    assert r.intended[first] == due + interval  # the schedule, not the answer, sets it
    corrected, uncorrected, lag = r.core.take_counts()
    assert sum(corrected.values()) == sum(uncorrected.values()) == 1
    assert sum(lag.values()) >= 1  # one lag per send, on time or not
    assert min(corrected) >= min(uncorrected)


def test_a_run_past_its_tick_keeps_what_came_after_it_for_the_next_interval(
    rig: type[Rig],
) -> None:
    """room_ns: the send due just after the tick is made in this run, and take_counts
    splits at the tick: the send before it and its lag in one take, the answer that came
    after it and the later send's lag in the next."""
    r = rig(2, http=True, open_loop=True, request=b"GET / HTTP/1.1\r\n\r\n",
            interval_ns=10**12)  # fmt: skip
    first, second = r.client
    now = time.monotonic_ns()
    until = now + 200_000_000  # the first send (at +10 ms) comes well before it
    r.intended[first] = now + 10_000_000
    r.intended[second] = until + 300_000_000  # within the room: made before the run returns

    def answer_after_the_tick() -> None:
        assert r.server[0].recv(100) == r.request
        while time.monotonic_ns() <= until:  # the answer must come after the tick
            time.sleep(0.005)
        r.server[0].sendall(OK)

    server = threading.Thread(target=answer_after_the_tick)
    server.start()
    try:
        completed, events = r.core.run(
            r.alive, r.sent, r.intended, until, room_ns=1_000_000_000
        )  # fmt: skip
    finally:
        server.join(timeout=10)
    assert events == []
    assert r.sent[second] >= r.intended[second]  # made in this run, on its schedule
    assert r.server[1].recv(100) == r.request
    if completed == 0:  # the answer came after the second send: it is read now
        assert r.run(5.0, max_completed=1) == (1, [])
    before = r.core.take_counts()
    assert before[0] == before[1] == {} and sum(before[2].values()) == 1
    corrected, uncorrected, lag = r.core.take_counts()
    assert sum(corrected.values()) == sum(uncorrected.values()) == 1
    assert sum(lag.values()) == 1
    assert r.core.take_counts() == ({}, {}, {})


# ------------------------------------------------------------------- churn
CONNECT_FAILED, FAILED, ADOPT = 0, 1, 2


@pytest.fixture
def churn_epoll() -> Iterator[select.epoll]:
    ep = select.epoll()
    yield ep
    ep.close()


def _churn(ep: select.epoll, port: int, request: bytes, **kw: object) -> object:
    assert cload is not None
    return cload.ChurnCore(epoll_fd=ep.fileno(), request=request, http=False,
                           open_loop=False, address="127.0.0.1", port=port, **kw)  # fmt: skip


def test_churn_connects_sends_reads_one_answer_and_starts_the_next(
    churn_epoll: select.epoll,
) -> None:
    request = b"0123456789"
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5.0)
        core: Any = _churn(churn_epoll, listener.getsockname()[1], request)
        intended = array.array("q", [0])
        core.start([0])
        assert core.run(intended, time.monotonic_ns() + 20_000_000) == (0, [])
        server_side, _ = listener.accept()
        with server_side:
            server_side.settimeout(5.0)
            assert server_side.recv(100) == request
            assert core.inflight() == 1 and core.take_opened() == 1
            server_side.sendall(request)  # the echo: complete
            deadline = time.monotonic_ns() + 5_000_000_000
            completed, events = 0, []
            while not completed and time.monotonic_ns() < deadline:
                completed, events = core.run(intended, time.monotonic_ns() + 50_000_000)
            assert (completed, events) == (1, [])
            assert server_side.recv(100) == b""  # the core closed its end
        next_conn, _ = listener.accept()  # closed loop: the slot's next connection
        next_conn.close()
        corrected, uncorrected, lag = core.take_counts()
        assert sum(corrected.values()) == 1 and not uncorrected and not lag
        # The end of the window: the core hands that connection to Python's drain.
        exported = core.export()
        assert [(e[0], e[2]) for e in exported] == [(ADOPT, 0)]
        assert core.inflight() == 0 and core.export() == []
        os.close(exported[0][1])


def test_churn_reports_a_refused_connect_for_python_to_count(churn_epoll: select.epoll) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]  # closed below: nothing listens there
    core: Any = _churn(churn_epoll, port, b"x")
    core.start([3])
    intended = array.array("q", [0] * 4)
    events: list[tuple] = []
    deadline = time.monotonic_ns() + 5_000_000_000
    while not events and time.monotonic_ns() < deadline:
        _, events = core.run(intended, time.monotonic_ns() + 50_000_000)
    assert events == [(CONNECT_FAILED, 3, errno.ECONNREFUSED)]
    assert core.inflight() == 0 and core.take_opened() == 0


def test_bad_arguments_are_named() -> None:
    assert cload is not None
    with pytest.raises(ValueError, match="request must not be empty"):
        cload.KeepAliveCore(epoll_fd=0, request=b"", http=True, open_loop=False)
    with pytest.raises(ValueError, match="poll_ns must be >= 0"):
        cload.KeepAliveCore(epoll_fd=0, request=b"x", http=True, open_loop=False, poll_ns=-1)
    core = cload.KeepAliveCore(epoll_fd=0, request=b"x", http=True, open_loop=False)
    with pytest.raises(TypeError, match="array"):
        core.run(bytearray(4), [0] * 4, array.array("q", [0] * 4), 0)
