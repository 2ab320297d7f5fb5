"""The processes a process started, read from /proc (Linux): tests check what they leave."""

from __future__ import annotations

from pathlib import Path


def children(pid: int) -> dict[int, list[str]]:
    """Each child of ``pid`` with its command line; one that exited but was not yet reaped (a
    zombie: no command line left) as ``[<name> (Z)]``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # it ended while we looked
            continue
        name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:  # field 4, after the parenthesised name and the state
            found[int(entry.name)] = [arg for arg in argv if arg] or [f"<{name}> ({fields[0]})"]
    return found
