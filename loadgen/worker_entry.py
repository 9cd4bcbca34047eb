"""``python -m loadgen.worker_entry FD``: the command line of one worker process.

FD is the worker's end of the socketpair its parent (loadgen.run) created.
The first message on it is ("init", LoadConfig, WorkerPlan). A separate module
from loadgen.worker so that runpy does not execute a module that the package
import already loaded.
"""

from __future__ import annotations

import signal
import sys
from multiprocessing.connection import Connection


def main(argv: list[str]) -> int:
    # Ctrl-C reaches the whole process group; only the parent reacts, then tells us to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(int(argv[1]))
    msg = conn.recv()
    if msg[0] != "init":
        return 2
    from loadgen.worker import worker_main

    _, cfg, plan = msg
    worker_main(cfg, plan, conn)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
