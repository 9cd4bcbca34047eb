"""``python -m loadgen.worker_entry FD``: one load generator worker process.

FD is the worker's end of the socketpair its parent (loadgen.run) created.
The first message on it is ("init", LoadConfig, WorkerPlan); the life of a
worker is described in loadgen.worker_base. The loop is picked here, from
the config: KeepAliveWorker (loadgen.keepalive) or, for
new_connection_per_request, ChurnWorker (loadgen.churn). Nothing in the
package imports this module, so runpy never executes a module that the
package import already loaded.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any

from lifeline import die_with_parent
from loadgen.churn import ChurnWorker
from loadgen.churn_c import CoreChurnWorker
from loadgen.config import LoadConfig
from loadgen.core import compiled_core
from loadgen.keepalive import KeepAliveWorker
from loadgen.keepalive_c import CoreKeepAliveWorker
from loadgen.plan import WorkerPlan
from loadgen.wake_slice import request_short_slice
from loadgen.worker_base import WorkerBase


def make_worker(cfg: LoadConfig, plan: WorkerPlan, conn: Connection) -> WorkerBase:
    """The loop for this config: a new connection per request, or keep-alive (compiled when
    the core is built)."""
    module = compiled_core()
    if cfg.new_connection_per_request:
        if module is None:
            return ChurnWorker(cfg, plan, conn)
        return CoreChurnWorker(cfg, plan, conn, module)
    if module is None:
        return KeepAliveWorker(cfg, plan, conn)
    return CoreKeepAliveWorker(cfg, plan, conn, module)


def wait_for_go(conn: Connection) -> tuple[Any, ...]:
    """Block until the parent says go or stop; stop if the parent disappears."""
    parent = os.getppid()
    while True:
        if conn.poll(0.5):
            try:
                return conn.recv()
            except (EOFError, OSError):
                return ("stop",)
        if os.getppid() != parent:
            return ("stop",)


def worker_main(cfg: LoadConfig, plan: WorkerPlan, conn: Connection) -> None:
    """Connect, wait for go, run, hold until released, report; then close every descriptor."""
    worker = None
    try:
        worker = make_worker(cfg, plan, conn)
        worker.setup_process()
        if cfg.mode == "open":
            # Keep time: a wake-up before a send preempts whatever else runs on the
            # worker's CPU (loadgen.wake_slice says why, and what it measured).
            request_short_slice()
        conn.send(("connected", worker.connect_all()))
        msg = wait_for_go(conn)
        if msg[0] == "go" and not worker.stop_requested:
            worker.run_load(*msg[1:])
            worker.hold_until_release()
        else:
            worker.stop_requested = True
        conn.send(("result", worker.result()))
    except BaseException:
        text = traceback.format_exc()
        try:
            conn.send(("error", plan.index, text))
        except OSError:
            # The parent is gone or the channel broke: stderr is all that is left.
            print(f"loadgen worker {plan.index} failed:\n{text}", file=sys.stderr)
    finally:
        if worker is not None:
            worker.close_all()
        conn.close()


def main(argv: list[str]) -> int:
    die_with_parent()  # before anything else: a worker never outlives loadgen.run's process
    # Ctrl-C reaches the whole process group; only the parent reacts, then tells us to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(int(argv[1]))
    msg = conn.recv()
    if msg[0] != "init":
        return 2
    _, cfg, plan = msg
    worker_main(cfg, plan, conn)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
