"""The fd-limit probe stops offering connections once a server stops accepting them."""

from __future__ import annotations

import socket

import pytest

from bench.measure import probe


@pytest.mark.slow  # waits for connect timeouts
def test_probe_stops_after_consecutive_connect_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe, "CONNECT_TIMEOUT_S", 0.2)
    with socket.socket() as listener:  # listens, never accepts: its backlog fills up
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        result = probe.fd_limit_probe("127.0.0.1", port, 200, deadline_s=0.5)
    assert result.requested == 200
    assert result.connect_errors.get("timeout") == probe.MAX_CONNECT_TIMEOUTS_IN_A_ROW
    not_tried = result.connect_errors["not_attempted_after_timeouts"]
    assert result.established + probe.MAX_CONNECT_TIMEOUTS_IN_A_ROW + not_tried == 200
    assert result.served == 0
