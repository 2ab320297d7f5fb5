"""Detached service processes with pid files: start, find, stop, read logs."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from kinfer.infra.errors import PortInUse
from kinfer.infra.stack import procfs


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def require_free_ports(ports: dict[str, int]) -> None:
    """Raise :class:`PortInUse` naming the setting of the first taken port."""
    for setting, port in ports.items():
        if not port_is_free(port):
            raise PortInUse(
                f"port {port} on 127.0.0.1 is already in use; stop whatever listens there "
                f"or set {setting} to a free port"
            )


class PortPicker:
    """Ports free right now, for tests and benchmarks, handed out in turn from a range below the
    kernel's ephemeral one: an outgoing connection takes its local port from the ephemeral range,
    so it can never take a port picked here before its server binds it (a port from bind(0) can
    be). Processes that pick side by side (pytest-xdist's) are each given a slice of their own."""

    def __init__(self, ports: range) -> None:
        self.ports = ports
        self._next = ports.start + random.randrange(len(ports))

    def block(self, count: int) -> int:
        """The first of ``count`` consecutive ports free right now (a local cluster's nodes)."""
        for _ in range(len(self.ports)):
            base = self._next
            self._next = base + count if base + 2 * count <= self.ports.stop else self.ports.start
            if base + count <= self.ports.stop and all(port_is_free(p) for p in range(base, base + count)):
                return base
        raise RuntimeError(f"no {count} consecutive free ports in {self.ports}")

    def narrow(self, index: int, of: int) -> None:
        """Pick only from the ``index``-th of ``of`` equal parts of the range."""
        size = len(self.ports) // of
        start = self.ports.start + index * size
        self.ports = range(start, start + size)
        self._next = start + random.randrange(size)


def _below_ephemeral() -> range:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default
    return range(max(1024, low - 12_000), low)


PORTS = PortPicker(_below_ephemeral())


def free_port() -> int:
    """A port free right now (for tests and benchmarks)."""
    return PORTS.block(1)


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive ports free right now."""
    return PORTS.block(count)


def log_tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return f"(no log at {path})"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
"""Handles of services this process started: kept so they are reaped, not leaked."""


class ManagedProcess:
    """A service started in its own session, found again through its pid file."""

    def __init__(self, name: str, pid_file: Path, log_file: Path) -> None:
        self.name = name
        self.pid_file = pid_file
        self.log_file = log_file

    def pid(self) -> int | None:
        """The pid of the running process, or None (stale pid files are removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if not _alive(pid):
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def start(self, argv: Sequence[str], env: dict[str, str] | None = None) -> int:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        _CHILDREN[proc.pid] = proc
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def exited(self) -> bool:
        return self.pid() is None

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM, then SIGKILL after ``timeout_s``. True if something was stopped."""
        pid = self.pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _CHILDREN[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone: reap it.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    found = procfs.stat(pid)
    # A zombie child of another counts as gone too; without /proc, kill(0) had the last word.
    return found is None or not found.zombie
