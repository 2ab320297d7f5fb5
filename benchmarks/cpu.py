"""CPU time each part of a private stack spends, read from /proc (Linux): where a request's
cost goes when every process shares the same cores.

Only this process and its descendants are counted (the broker, Redis and the stages a
benchmark starts), by role: the command line says which.
"""

from __future__ import annotations

import os

from kinfer.infra.stack import procfs

ROLES = (
    ("broker", "kafka.Kafka"),
    ("redis", "redis-server"),
    ("admission", "cli admission"),
    ("worker", "cli worker"),
)


def _role(pid: int) -> str | None:
    if pid == os.getpid():
        return "client"
    command = " ".join(procfs.command_line(pid) or [])
    return next((role for role, marker in ROLES if marker in command), None)


def cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of this process and its descendants, summed per role."""
    stats = {found.pid: found for found in procfs.processes()}
    ours = {os.getpid()}
    grew = True
    while grew:  # descendants: any process whose parent is ours
        new = {pid for pid, found in stats.items() if found.parent in ours and pid not in ours}
        ours |= new
        grew = bool(new)
    totals: dict[str, float] = {}
    for pid in ours:
        role = _role(pid)
        if role is not None and pid in stats:
            totals[role] = totals.get(role, 0.0) + stats[pid].cpu_s
    return totals


def per_request_ms(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, float]:
    """CPU ms per request of each role between two :func:`cpu_seconds` readings."""
    return {role: (after[role] - before.get(role, 0.0)) * 1000 / requests for role in sorted(after)}
