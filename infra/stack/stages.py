"""Pipeline stages as child processes, started exactly as a user starts them
(`kinfer admission`, `kinfer worker`): used by the demo, benchmarks and tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path


def kinfer_argv(*args: str) -> list[str]:
    """argv that runs the kinfer CLI of this interpreter."""
    return [sys.executable, "-m", "kinfer.infra.cli", *args]


class StageProcess:
    def __init__(self, name: str, args: Sequence[str], env: dict[str, str], log_file: Path) -> None:
        self.name = name
        self.log_file = log_file
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_file.open("ab")
        self.proc = subprocess.Popen(
            kinfer_argv(*args),
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: a crash, for fault-injection tests."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def pause(self) -> None:
        """SIGSTOP: a hung process (it holds its connections and answers nothing), for tests."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGCONT)

    def terminate(self) -> None:
        """SIGTERM (a clean leave), without waiting for it."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
                os.killpg(self.proc.pid, signal.SIGCONT)  # a paused stage hears it only then

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM (clean leave), SIGKILL after ``timeout_s``; returns the exit code."""
        if self.alive():
            self.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
        return self.proc.returncode

    def tail(self, lines: int = 20) -> str:
        text = self.log_file.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def stop_all(stages: Sequence[StageProcess]) -> None:
    """Stop the stages together: each leaves its groups on its own (a second or two each),
    and none waits for another to be gone."""
    for stage in stages:
        stage.terminate()
    for stage in stages:
        stage.stop()


@contextlib.contextmanager
def running(stages: list[StageProcess]) -> Iterator[list[StageProcess]]:
    """Stop every stage on exit, whatever happened."""
    try:
        yield stages
    finally:
        stop_all(stages)
