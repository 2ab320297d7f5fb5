"""/proc as kinfer reads it: a name with spaces and parentheses, a zombie, a process gone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from kinfer.infra.stack import procfs
from tests.processes import children


def test_this_process_reads_as_running_with_its_parent_and_command_line() -> None:
    found = procfs.stat(os.getpid())
    assert found is not None
    assert (found.parent, found.zombie, found.state in "RS") == (os.getppid(), False, True)
    assert found.cpu_s > 0
    assert procfs.command_line(os.getpid()) == sys.orig_argv


def test_a_name_with_spaces_and_parentheses_does_not_shift_the_fields(tmp_path: Path) -> None:
    # The kernel names a process after the file it executed (15 bytes at most).
    odd = tmp_path / "a) b (c"
    odd.symlink_to(shutil.which("sleep") or "/bin/sleep")
    child = subprocess.Popen([str(odd), "30"])
    try:
        # Popen returns once exec began; the kernel sets the arguments a moment later.
        deadline = time.monotonic() + 10
        while not procfs.command_line(child.pid):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        found = procfs.stat(child.pid)
        assert found is not None
        assert (found.name, found.parent, found.state in "RS") == ("a) b (c", os.getpid(), True)
        assert procfs.command_line(child.pid) == [str(odd), "30"]
    finally:
        child.kill()
        child.wait()


def test_a_child_that_exited_unreaped_is_a_zombie_and_then_gone() -> None:
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while (found := procfs.stat(child.pid)) is not None and not found.zombie:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert children(os.getpid())[child.pid] == ["<true> (Z)"]
    child.wait()
    assert procfs.stat(child.pid) is None and procfs.command_line(child.pid) is None
    assert child.pid not in {p.pid for p in procfs.processes()}
