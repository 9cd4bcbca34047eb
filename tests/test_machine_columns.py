"""The machine's CPU per request, steal and the server's run delay over a trial's window."""

from __future__ import annotations

import os

import pytest

from bench.measure.columns import (
    STEAL_FRACTION_MAX,
    machine_window_columns,
    server_window_columns,
    window_reasons,
)
from bench.measure.machine.proc_stat import MachineCpu, parse_proc_stat, read_machine_cpu
from bench.measure.placement import Edge, ProcessCpu, schedstat_ns
from bench.measure.trial import Trial
from bench.tables import COMMON_COLUMNS

# A 2-CPU /proc/stat: user nice system idle iowait irq softirq steal guest guest_nice.
PROC_STAT = """\
cpu  1000 50 300 8000 100 20 30 40 7 3
cpu0 600 25 150 4000 50 10 15 20 7 3
cpu1 400 25 150 4000 50 10 15 20 0 0
intr 123456 0 0
ctxt 987654
btime 1700000000
processes 4242
"""


def test_busy_idle_and_steal_from_the_aggregate_line() -> None:
    cpu = parse_proc_stat(PROC_STAT, ticks_per_s=100)
    assert cpu is not None
    # user + nice + system + irq + softirq; guest is inside user already.
    assert cpu.busy_s == pytest.approx((1000 + 50 + 300 + 20 + 30) / 100)
    assert cpu.idle_s == pytest.approx((8000 + 100) / 100)
    assert cpu.steal_s == pytest.approx(40 / 100)
    assert cpu.cpus == 2


@pytest.mark.parametrize("text", ["", "intr 1 2 3\n", "cpu  1 2 3\n", "cpu  1 2 x 4 5 6 7 8\n"])
def test_an_unreadable_proc_stat_gives_nothing(text: str) -> None:
    assert parse_proc_stat(text, ticks_per_s=100) is None


def test_this_machine_and_process_can_be_read() -> None:
    cpu = read_machine_cpu()
    assert cpu is not None and cpu.cpus >= 1 and cpu.busy_s > 0
    ns = schedstat_ns(os.getpid())
    assert ns is not None and ns[0] > 0 and ns[1] >= 0


def _edge(at_s: float, busy_s: float, steal_s: float, delay_ns: int | None, cpus: int = 2) -> Edge:
    process = ProcessCpu(
        cpu_user_s=0.0,
        cpu_system_s=0.0,
        rss_bytes=0,
        num_fds=0,
        cpu_ns_schedstat=None,
        run_delay_ns_schedstat=delay_ns,
    )
    machine = MachineCpu(busy_s=busy_s, idle_s=100.0, steal_s=steal_s, cpus=cpus)
    return Edge("t", at_s, None, None, process, None, machine)


def test_window_arithmetic_per_request_steal_share_and_run_delay() -> None:
    start = _edge(10.0, busy_s=50.0, steal_s=3.0, delay_ns=1_000_000)
    end = _edge(11.0, busy_s=51.5, steal_s=3.1, delay_ns=3_500_000)
    cols = machine_window_columns(start, end, requests=1000)
    assert cols["machine_cpu_us_per_req"] == pytest.approx(1500.0)
    # 0.1 s stolen of 1 s x 2 CPUs.
    assert cols["steal_fraction"] == pytest.approx(0.05)
    assert cols["server_run_delay_us"] == pytest.approx(2500.0)


def test_missing_reads_leave_the_columns_empty() -> None:
    start = _edge(10.0, 50.0, 3.0, None)
    end = _edge(11.0, 51.0, 3.0, 2_000, cpus=3)  # a CPU came online: no share is guessed
    cols = machine_window_columns(start, end, requests=None)
    assert cols == {
        "machine_cpu_us_per_req": None,
        "steal_fraction": None,
        "server_run_delay_us": None,
    }
    bare = Edge("t", 10.0, None, None, None, None)
    assert set(machine_window_columns(bare, bare, 10).values()) == {None}
    assert set(COMMON_COLUMNS) >= set(cols)


TRIAL = Trial(
    scenario="idle-scaling",
    backend="epoll",
    protocol="http",
    mode="closed",
    idle_connections=0,
    active_connections=8,
    rate_rps_requested=None,
    repetition=0,
    order_index=0,
    position_in_repetition=0,
    warmup_s=0.1,
    measure_s=1.0,
)


@pytest.mark.parametrize(("stolen_s", "flagged"), [(0.12, False), (0.4, True)])
def test_a_window_with_steal_above_the_bound_is_flagged(stolen_s: float, flagged: bool) -> None:
    start = _edge(10.0, busy_s=50.0, steal_s=3.0, delay_ns=0)
    end = _edge(12.0, busy_s=52.0, steal_s=3.0 + stolen_s, delay_ns=0)
    row = server_window_columns(start, end)
    share = stolen_s / (2.0 * 2)
    assert row["steal_fraction"] == pytest.approx(share)
    assert (share > STEAL_FRACTION_MAX) is flagged
    reasons = window_reasons(TRIAL, row)
    assert reasons == ([f"steal({share:.2f})"] if flagged else [])
