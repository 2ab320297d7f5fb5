"""What Linux's /proc says about a process: its state, parent and CPU time, and its command
line. The one reader of /proc/<pid>/stat, whose second field (the name, in parentheses) may
itself hold spaces and parentheses: fields are counted after its last ")"."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    name: str
    state: str
    """One letter: R running, S sleeping, T stopped, Z exited and not yet reaped (a zombie)..."""
    parent: int
    cpu_s: float
    """User and system time so far."""

    @property
    def zombie(self) -> bool:
        return self.state == "Z"


def stat(pid: int) -> ProcStat | None:
    """The process's stat; None when there is no such process (it ended while we looked)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name, fields = text[text.index("(") + 1 : text.rindex(")")], text.rsplit(")", 1)[1].split()
    # After the name: state (3), parent (4), ..., user time (14), system time (15); 1-based.
    return ProcStat(pid, name, fields[0], int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK)


def command_line(pid: int) -> list[str] | None:
    """Its arguments ([] for a zombie or a kernel thread); None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [arg for arg in raw.decode(errors="replace").split("\0") if arg]


def processes() -> Iterator[ProcStat]:
    """Every process there is now."""
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (found := stat(int(entry))) is not None:
            yield found
