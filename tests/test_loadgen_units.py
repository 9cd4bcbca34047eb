"""Load generator pieces that need no server: histograms, parsing, config, planning."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from loadgen import (
    ConfigError,
    LimitsTooLow,
    LoadConfig,
    LoadResult,
    RemoteNotAllowed,
    ResultFormatError,
    UnknownResultVersion,
    core,
    run_load,
)
from loadgen import histogram as hdr
from loadgen.config import resolve_target
from loadgen.plan import CONNECTIONS_PER_SOURCE, plan_workers
from loadgen.protocols import BAD, COMPLETE, INCOMPLETE, build_request, parse_echo, parse_http
from loadgen.result import SCHEMA_VERSION


def test_merged_worker_histograms_equal_one_histogram() -> None:
    rng = random.Random(7)
    values_ns = [int(rng.lognormvariate(12, 1.2)) for _ in range(30_000)]
    single = hdr.new_histogram()
    hdr.record_ns([single], values_ns)
    # Three "workers", each with a share, sent through encode/decode like the real ones.
    blobs = []
    for share in (values_ns[:7_000], values_ns[7_000:19_000], values_ns[19_000:]):
        h = hdr.new_histogram()
        hdr.record_ns([h], share)
        blobs.append(hdr.encode(h))
    merged = hdr.merge(blobs)
    assert hdr.summary_us(merged) == hdr.summary_us(single)
    assert merged.get_total_count() == len(values_ns)


def test_batch_recording_equals_per_value_recording() -> None:
    rng = random.Random(3)
    values_ns = [rng.randint(500, 80_000_000) for _ in range(5_000)]
    batched = hdr.new_histogram()
    hdr.record_ns([batched], values_ns)
    direct = hdr.new_histogram()
    for v in values_ns:
        direct.record_value(max(1, v // 1000))
    assert hdr.summary_us(batched) == hdr.summary_us(direct)


def test_send_lag_keeps_sub_microsecond_values_as_zero() -> None:
    h = hdr.new_histogram()
    clamped = hdr.record_ns([h], [0, 400, 999, 1_500, 2_000_000], lowest_us=0)
    assert clamped == 0
    assert hdr.lag_summary_us(h) == {"p50": 0, "p99": 2000, "max": 2000, "count": 5}
    assert hdr.lag_summary_us(None) == {"p50": None, "p99": None, "max": None, "count": 0}


def test_record_clamps_out_of_range_values() -> None:
    h = hdr.new_histogram()
    clamped = hdr.record_ns([h], [10, 5_000, (hdr.HIGHEST_US + 5) * 1000])
    assert clamped == 2
    assert h.get_total_count() == 3


def test_http_parser_frames_by_content_length() -> None:
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
    assert parse_http(resp)[0] == COMPLETE
    assert parse_http(resp[:10])[0] == INCOMPLETE
    assert parse_http(resp[:-1])[0] == INCOMPLETE
    assert parse_http(resp + b"x")[0] == BAD
    assert parse_http(resp.replace(b"Content-Length", b"content-length"))[0] == COMPLETE


@pytest.mark.parametrize(
    "bad",
    [
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
    ],
)
def test_http_parser_rejects_bad_responses(bad: bytes) -> None:
    status, why = parse_http(bad)
    assert status == BAD and why


def test_echo_parser_checks_byte_count() -> None:
    req = build_request(LoadConfig(port=1, protocol="echo", payload_bytes=100))
    assert len(req) == 100
    assert parse_echo(req[:50], req)[0] == INCOMPLETE
    assert parse_echo(req, req)[0] == COMPLETE
    assert parse_echo(req + b"!", req)[0] == BAD


def test_http_request_is_keepalive_get() -> None:
    req = build_request(LoadConfig(port=8080, protocol="http", http_path="/x"))
    assert req.startswith(b"GET /x HTTP/1.1\r\n") and req.endswith(b"\r\n\r\n")
    assert b"Connection: close" not in req


def test_non_loopback_target_refused_without_allow_remote() -> None:
    cfg = LoadConfig(host="10.255.255.1", port=80)
    with pytest.raises(RemoteNotAllowed, match="--allow-remote"):
        run_load(cfg)
    allowed = LoadConfig(host="10.255.255.1", port=80, allow_remote=True)
    address, is_loopback = resolve_target(allowed)
    assert address == "10.255.255.1" and not is_loopback


def test_too_many_connections_for_fd_limit_fail_before_starting() -> None:
    cfg = LoadConfig(port=80, idle_connections=50_000, active_connections=8, workers=1)
    with pytest.raises(LimitsTooLow, match="--workers"):
        plan_workers(cfg, "127.0.0.1", True)


def test_plan_spreads_connections_and_source_addresses() -> None:
    cfg = LoadConfig(port=80, idle_connections=19_000, active_connections=9, workers=2)
    plans = plan_workers(cfg, "127.0.0.1", True)
    assert [p.idle for p in plans] == [9_500, 9_500]
    assert [p.active for p in plans] == [5, 4]
    assert [p.first_active_index for p in plans] == [0, 5]
    assert len(plans[0].sources) * CONNECTIONS_PER_SOURCE >= 19_009
    assert all(s.startswith("127.0.0.") and s != "127.0.0.1" for s in plans[0].sources)
    small = plan_workers(LoadConfig(port=80, active_connections=8), "127.0.0.1", True)
    assert small[0].sources == ()


def test_open_loop_rate_is_split_by_active_share() -> None:
    cfg = LoadConfig(port=80, active_connections=3, mode="open", rate_rps=300.0, workers=2)
    plans = plan_workers(cfg, "127.0.0.1", True)
    assert [p.rate_rps for p in plans] == [200.0, 100.0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "open"},  # no rate
        {"rate_rps": 100.0},  # rate in closed loop
        {"active_connections": 0, "idle_connections": 0},
        {"protocol": "ftp"},
        {"measure_s": 0},
        {"port": 0},
    ],
)
def test_inconsistent_config_is_rejected(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {"port": 80}
    base.update(kwargs)
    with pytest.raises(ConfigError):
        LoadConfig(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("version", [None, 0, SCHEMA_VERSION + 1, "1", True])
def test_from_dict_refuses_unknown_schema_version(version: object) -> None:
    with pytest.raises(UnknownResultVersion, match="schema_version"):
        LoadResult.from_dict({"schema_version": version, "requests": 1})


def test_from_dict_names_a_missing_key() -> None:
    with pytest.raises(ResultFormatError, match="'partial'"):
        LoadResult.from_dict({"schema_version": 3})


def test_the_core_choice_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(core.CORE_ENV, "python")
    assert core.compiled_core() is None  # the Python loop, even where the core is built
    monkeypatch.setenv(core.CORE_ENV, "rust")
    with pytest.raises(ConfigError, match=r"SELECTBENCH_LOADGEN_CORE='rust'.*unset it"):
        core.compiled_core()


def test_the_closed_loop_poll_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(core.POLL_ENV, raising=False)
    assert core.wanted_poll_ns() == core.DEFAULT_POLL_NS == 30_000
    monkeypatch.setenv(core.POLL_ENV, "0")
    assert core.wanted_poll_ns() == 0  # block at once
    monkeypatch.setenv(core.POLL_ENV, "50000")
    assert core.wanted_poll_ns() == 50_000
    for bad in ("-1", "30us", str(core.MAX_POLL_NS + 1)):
        monkeypatch.setenv(core.POLL_ENV, bad)
        with pytest.raises(ConfigError, match=r"SELECTBENCH_LOADGEN_POLL_NS=.*unset it"):
            core.wanted_poll_ns()


def test_a_bad_poll_is_named_before_any_worker_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(core.POLL_ENV, "30us")
    # Port 1 has no listener: reaching the precheck would raise TargetUnreachable instead.
    with pytest.raises(ConfigError, match="SELECTBENCH_LOADGEN_POLL_NS"):
        run_load(LoadConfig(port=1, active_connections=1, measure_s=0.1))


def test_a_required_core_that_is_not_built_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(core.CORE_ENV, "c")
    monkeypatch.setattr(core, "load_core", lambda: None)
    with pytest.raises(ConfigError, match=r"loadgen._cload is not built: apt-get install gcc"):
        core.compiled_core()
    monkeypatch.delenv(core.CORE_ENV)
    assert core.compiled_core() is None  # not built, not required: the Python loop


def test_a_missing_core_build_path_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delitem(sys.modules, core.EXTENSION, raising=False)
    monkeypatch.setenv(core.CORE_PATH_ENV, str(tmp_path / "nothing.so"))
    with pytest.raises(ConfigError, match=r"SELECTBENCH_CLOAD=.*is not a built extension"):
        core.load_core()
