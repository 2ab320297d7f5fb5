"""The processes a process started, read from /proc (Linux): tests check what they leave."""

from __future__ import annotations

from pathlib import Path


def children(pid: int) -> dict[int, list[str]]:
    """Each living child of ``pid`` with its command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # it ended while we looked
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # field 4, after the parenthesised name
            found[int(entry.name)] = [arg for arg in argv if arg]
    return found
