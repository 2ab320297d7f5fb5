"""``python -m kinfer.infra.supervise NAME -- ARGV...``: keep one stage of `kinfer up` running.

The supervisor runs the stage as its child and restarts it when it crashes (exit
status other than 0), waiting 1, 2, 4 ... up to 30 s between tries, and gives up
after ``MAX_CRASHES`` crashes within ``CRASH_WINDOW_S``. SIGTERM or SIGINT is passed
on to the stage, which drains and exits; then the supervisor exits too. Its pid is
the one `kinfer up` keeps in the stage's pid file; both write to the stage's log.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

import structlog

from kinfer.infra import logs

log = structlog.get_logger("kinfer.supervise")

MAX_CRASHES = 5
CRASH_WINDOW_S = 120.0
MAX_BACKOFF_S = 30.0


def supervise(name: str, argv: Sequence[str]) -> int:
    stopping = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: object) -> None:
        stopping.set()
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    crashes: list[float] = []
    while not stopping.is_set():
        child = subprocess.Popen(list(argv))
        log.info("supervise.started", stage=name, pid=child.pid)
        code = child.wait()
        if stopping.is_set() or code == 0:
            log.info("supervise.stopped", stage=name, exit_code=code)
            return 0 if stopping.is_set() else code
        now = time.monotonic()
        crashes = [t for t in crashes if now - t < CRASH_WINDOW_S] + [now]
        if len(crashes) >= MAX_CRASHES:
            log.error("supervise.gave_up", stage=name, exit_code=code, crashes=len(crashes))
            return code
        backoff = min(MAX_BACKOFF_S, 2.0 ** (len(crashes) - 1))
        log.warning("supervise.crashed", stage=name, exit_code=code, restart_in_s=backoff)
        stopping.wait(backoff)
    return 0


def main() -> None:
    args = sys.argv[1:]
    if len(args) < 3 or args[1] != "--":
        sys.exit("usage: python -m kinfer.infra.supervise NAME -- ARGV...")
    name, argv = args[0], args[2:]
    logs.configure()
    sys.exit(supervise(name, argv))


if __name__ == "__main__":
    main()
