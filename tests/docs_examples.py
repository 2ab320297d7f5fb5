"""The code blocks of the docs and the README, as tests see them.

Every ``python``/``sh`` block is marked on the line above it: ``<!-- example: NAME -->`` when a
test runs it against a live stack (through :func:`example`, so the test runs the text a reader
copies), or ``<!-- illustrative: why -->`` when none does. ``tests/unit/test_docs_examples.py``
holds every block to that.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from kinfer.infra.docs_hooks import EXAMPLE

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
RUNNABLE = {"python", "py", "sh", "bash", "console", "shell"}
FENCE = re.compile(r"^\s*```(\w*)")


@dataclass(frozen=True)
class Block:
    page: str
    """Path from the repository root."""
    line: int
    lang: str
    code: str
    mark: str | None
    """The marker comment on the line above the fence, if any."""

    @property
    def example(self) -> str | None:
        found = EXAMPLE.match(self.mark or "")
        return found[1] if found else None


def blocks(path: Path, root: Path = REPO) -> list[Block]:
    """Every fenced block of a Markdown file, with the line above it (its marker, if any)."""
    lines = path.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip().startswith("```"))
        above = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), None)
        code = "\n".join(lines[i + 1 : end]) + "\n"
        found.append(Block(str(path.relative_to(root)), i + 1, fence[1], code, above))
        i = end + 1
    return found


def example(page: str, name: str) -> str:
    """The code of the block marked ``<!-- example: name -->`` on ``page`` (from the repo root)."""
    (block,) = [b for b in blocks(REPO / page) if b.example == name]
    return block.code


def run_python(code: str, replace: dict[str, str], timeout_s: float = 180) -> str:
    """Run an example as a reader would (a fresh interpreter), with the addresses, keys and
    names of the test's own stack put in for the documented ones; its stdout."""
    for documented, actual in replace.items():
        assert documented in code, f"the example no longer says {documented!r}"
        code = code.replace(documented, actual)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
