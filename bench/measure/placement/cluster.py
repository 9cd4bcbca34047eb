"""A Dask cluster seen by bench: its hosts by role, their agents, clocks and liveness.

Roles are Dask worker resources: ``server=1`` on the machine under test,
``load=1`` on each load machine (``dask worker ADDR --resources server=1``).
bench places one agent per such worker (``bench.measure.placement.agents``) with
``client.submit(Agent, actor=True, workers=[that worker], resources={role: 1})``
and talks to it directly (``direct_to_workers``). Dask distributed is imported
here, only when a cluster is asked for: a run without ``--cluster`` never
loads it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.measure.placement.clock import ROUNDS_FIRST, ClockOffset, measure_offset

INSTALL_LINE = "pip install -e '.[cluster]'"
SERVER_RESOURCE = "server"
LOAD_RESOURCE = "load"
# Seconds: reaching the scheduler, placing an agent, a liveness check, one clock round.
CONNECT_TIMEOUT_S = 15.0
# How long the early check waits for a refusal before leaving the address to the client:
# a refused port answers with a reset within one round trip (well under 1 s on a LAN).
REFUSAL_WAIT_S = 1.0
PLACE_TIMEOUT_S = 60.0
ALIVE_TIMEOUT_S = 3.0
CLOCK_TIMEOUT_S = 5.0
# A call waits in slices this long and asks the scheduler between them whether the host's
# worker is still there. A call to an actor whose worker died waits for the actor to be
# placed again (distributed's Actor proxy), which never happens for an agent pinned to that
# worker: a server host killed as the window opened held its trial for 12 s more than
# its timeout-free path (tests/test_placement_dask.py, 2026-12-06).
LOST_CHECK_S = 0.5


class ClusterError(RuntimeError):
    """A cluster run cannot start; the message says why and what to do."""


class HostLost(RuntimeError):
    """A host's agent stopped answering: its worker or machine is gone."""


def import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ClusterError(
            "--cluster needs Dask distributed, which is not installed here: "
            f"{INSTALL_LINE} (on this machine and on every worker host)"
        ) from exc
    return distributed


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def worker_ip(worker: str) -> str:
    """``tcp://198.18.0.2:40123`` -> ``198.18.0.2`` (IPv6 brackets removed)."""
    hostport = worker.split("://", 1)[-1]
    host = hostport.rsplit(":", 1)[0]
    return host.strip("[]")


@dataclass
class Host:
    """One worker with a role, its agent and what was measured of it."""

    role: str
    worker: str
    name: str
    address: str
    agent: Any = None
    future: Any = None  # keeps the actor alive while bench holds it
    facts: dict[str, Any] = field(default_factory=dict)
    clock: ClockOffset | None = None
    clocks: list[ClockOffset] = field(default_factory=list)
    lost: str | None = None

    @property
    def label(self) -> str:
        hostname = self.facts.get("hostname") or self.name
        return f"{self.role} host {hostname} ({self.address})"

    @property
    def cpus(self) -> int:
        return len(self.facts.get("machine", {}).get("cpus_allowed") or [1])

    def describe(self) -> dict[str, Any]:
        machine = self.facts.get("machine", {})
        doc: dict[str, Any] = {
            "role": self.role,
            "hostname": self.facts.get("hostname"),
            "address": self.address,
            "worker": self.worker,
            "worker_name": self.name,
            "cpus_allowed": machine.get("cpus_allowed"),
            "cpu_model": machine.get("cpu_model"),
            "kernel": machine.get("kernel"),
            "python": machine.get("python"),
            "rlimit_nofile": machine.get("rlimit_nofile"),
            "ephemeral_port_range": machine.get("ephemeral_port_range"),
            "somaxconn": machine.get("somaxconn"),
            "git": self.facts.get("git"),
            "clock": self.clock.as_dict() if self.clock else None,
            "lost": self.lost,
        }
        if self.clocks:
            offsets = [c.offset_mono_s for c in self.clocks]
            doc["clock_per_trial"] = {
                "measurements": len(self.clocks),
                "uncertainty_max_s": round(max(c.uncertainty_s for c in self.clocks), 9),
                "offset_mono_drift_s": round(max(offsets) - min(offsets), 9),
            }
        return doc


def _refuse_early(address: str, timeout_s: float) -> None:
    """Raise ConnectionRefusedError when a tcp:// scheduler's port refuses a connection.

    Anything else (no answer, a name that does not resolve here, another protocol) is
    left to the Dask client, which waits up to its timeout.
    """
    if not address.startswith("tcp://"):
        return
    host, _, port = address[len("tcp://") :].rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        # A refusal comes back within one round trip; a silent host is the client's to wait
        # for (within its own timeout), not twice.
        wait_s = min(timeout_s, REFUSAL_WAIT_S)
        socket.create_connection((host.strip("[]"), int(port)), timeout=wait_s).close()
    except ConnectionRefusedError:
        raise
    except OSError:
        return


class Cluster:
    """The client, the hosts by role and every call to their agents."""

    def __init__(self, address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        distributed = import_distributed()
        self.address = address
        try:
            # A refused port is known at once; the client would retry it for timeout_s.
            _refuse_early(address, timeout_s)
            # The default client: an actor's proxy finds its client through get_client().
            self.client = distributed.Client(address, timeout=timeout_s, direct_to_workers=True)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {address} ({type(exc).__name__}: {exc}): "
                "start it with `dask scheduler --host HOST --port 8786` (see docs/cluster.md)"
            ) from exc
        self.hosts: list[Host] = []

    def workers(self) -> dict[str, dict[str, Any]]:
        try:
            info = self.client.scheduler_info(n_workers=-1)  # every worker, not the first 5
        except TypeError:  # an older distributed has no n_workers and lists every worker
            info = self.client.scheduler_info()
        return dict(info["workers"])

    def hosts_with(self, resource: str) -> list[Host]:
        found = []
        for worker, info in sorted(self.workers().items()):
            if (info.get("resources") or {}).get(resource, 0) >= 1:
                found.append(
                    Host(resource, worker, str(info.get("name", worker)), worker_ip(worker))
                )
        return found

    def place(self, host: Host, agent_cls: type, resource: str | None) -> Host:
        """Create ``agent_cls`` as an actor on exactly this host's worker."""
        future = self.client.submit(
            agent_cls,
            actor=True,
            workers=[host.worker],
            allow_other_workers=False,
            resources={resource: 1} if resource else None,
            pure=False,
        )
        try:
            host.agent = future.result(timeout=PLACE_TIMEOUT_S)
        except Exception as exc:
            raise ClusterError(
                f"could not place the {agent_cls.__name__} on worker {host.worker} "
                f"({type(exc).__name__}: {exc}): is this project installed there "
                f"(same checkout, {INSTALL_LINE})?"
            ) from exc
        host.future = future
        self.hosts.append(host)
        return host

    def measure_clock(self, host: Host, rounds: int = ROUNDS_FIRST) -> ClockOffset:
        def ask() -> tuple[int, int]:
            mono, wall = host.agent.clock().result(timeout=CLOCK_TIMEOUT_S)
            return int(mono), int(wall)

        offset = self.call_with(host, lambda: measure_offset(ask, rounds))
        if host.clock is None:
            host.clock = offset
        else:
            host.clocks.append(offset)
        return offset

    def alive(self, host: Host) -> bool:
        try:
            host.agent.clock().result(timeout=ALIVE_TIMEOUT_S)
        except Exception:
            return False
        return True

    def lose(self, host: Host, exc: BaseException) -> HostLost:
        host.lost = f"{host.label} disappeared: {type(exc).__name__}: {exc}".rstrip(": ")
        with contextlib.suppress(Exception):
            self.client.cancel([host.future])
        return HostLost(host.lost)

    def call_with(self, host: Host, fn: Any) -> Any:
        """Run ``fn`` (which talks to host's agent); a failure of a gone host is HostLost."""
        if host.lost:
            raise HostLost(host.lost)
        try:
            return fn()
        except HostLost:
            raise
        except Exception as exc:
            if self.alive(host):
                raise
            raise self.lose(host, exc) from exc

    def call(self, host: Host, method: str, *args: Any, timeout_s: float) -> Any:
        return self.call_with(
            host, lambda: self.wait(host, getattr(host.agent, method)(*args), timeout_s)
        )

    def wait(self, host: Host, future: Any, timeout_s: float) -> Any:
        """The call's result within ``timeout_s``; HostLost once the scheduler no longer
        lists the host's worker (``LOST_CHECK_S``)."""
        if isinstance(future, Exception):
            raise future
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            try:
                return future.result(timeout=max(0.0, min(LOST_CHECK_S, left)))
            except TimeoutError:
                if left <= LOST_CHECK_S:
                    raise
            if host.worker not in self.workers():
                raise self.lose(host, HostLost("its worker left the Dask cluster"))

    def call_all(
        self, hosts: Sequence[Host], method: str, args: Sequence[tuple[Any, ...]], timeout_s: float
    ) -> list[Any]:
        """The same method on several agents at once; every call ends before an error is
        raised (the first one, HostLost for a gone host)."""
        pending = []
        for host, host_args in zip(hosts, args, strict=True):
            try:
                pending.append(getattr(host.agent, method)(*host_args))
            except Exception as exc:  # an actor whose worker is already known lost
                pending.append(exc)
        results: list[Any] = []
        first: BaseException | None = None
        for host, fut in zip(hosts, pending, strict=True):
            try:
                results.append(
                    self.call_with(host, lambda h=host, f=fut: self.wait(h, f, timeout_s))
                )
            except Exception as exc:
                results.append(None)
                first = first or exc
        if first is not None:
            raise first
        return results

    def close(self) -> None:
        """Close every agent (each ends what it started), release them, close the client."""
        for host in self.hosts:
            if host.lost is None:
                with contextlib.suppress(Exception):
                    self.call(host, "close", timeout_s=30.0)
        with contextlib.suppress(Exception):
            self.client.cancel([h.future for h in self.hosts if h.future is not None])
        self.hosts = []
        with contextlib.suppress(Exception):
            self.client.close(timeout=10)
