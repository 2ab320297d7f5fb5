"""The processes a process started (Linux): tests check what they leave."""

from __future__ import annotations

from kinfer.infra.stack import procfs


def children(pid: int) -> dict[int, list[str]]:
    """Each child of ``pid`` with its command line; one that exited but was not yet reaped (a
    zombie: no command line left) as ``[<name> (Z)]``."""
    found = {}
    for child in procfs.processes():
        if child.parent == pid and (argv := procfs.command_line(child.pid)) is not None:
            found[child.pid] = argv or [f"<{child.name}> ({child.state})"]
    return found
