"""A real HTTP client against every backend: `wrk -t1 -c50 -d1s` finishes with zero errors.

wrk's result comes back through a Lua done() hook writing JSON (never regexes on its
human-readable output), following pyperf's structured-channel rule.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from test_servers_support import backend_params, wait_idle

# wrk's results come as JSON from the project's one Lua done() hook, never scraped.
from bench.measure.wrk import WRK_DONE_LUA as WRK_JSON_LUA
from bench.measure.wrk import wrk_env

pytestmark = pytest.mark.slow  # wrk runs for 1 s per backend

WRK_CONNECTIONS = 50


def run_wrk_json(port: int, tmp_path: Path, duration_s: int = 1) -> dict:
    """Run wrk once and return its done() JSON; fails with wrk's stderr if it produced none."""
    script = tmp_path / "wrk_json.lua"
    script.write_text(WRK_JSON_LUA)
    out = tmp_path / "wrk.json"
    cmd = [
        "wrk",
        "-t1",
        f"-c{WRK_CONNECTIONS}",
        f"-d{duration_s}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}/",
    ]
    proc = subprocess.run(
        cmd,
        env=wrk_env(out),
        capture_output=True,
        text=True,
        timeout=duration_s + 30,
        check=False,
    )
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}: {proc.stderr}"
    assert out.exists(), f"wrk wrote no JSON; stdout: {proc.stdout} stderr: {proc.stderr}"
    return json.loads(out.read_text())


@pytest.mark.parametrize("backend", backend_params())
def test_wrk_http_keep_alive_zero_errors(start_server, backend: str, tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed: `apt-get install wrk` (.ci/run installs it)")
    srv = start_server(backend, "http")
    before = wait_idle(srv)
    result = run_wrk_json(srv.port, tmp_path)
    assert result["errors"] == {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}, (
        result
    )
    assert result["requests"] > 0, result
    after = wait_idle(srv, timeout_s=30.0)
    # wrk stops counting at its deadline; answers already in flight are served but uncounted.
    served = after.requests - before.requests
    assert served >= result["requests"], (result, after)
    assert served <= result["requests"] + WRK_CONNECTIONS, (result, after)
    # wrk 4.x opens one extra connection first, to check that the address answers.
    accepted = after.accepted - before.accepted
    assert WRK_CONNECTIONS <= accepted <= WRK_CONNECTIONS + 1, (before, after)
