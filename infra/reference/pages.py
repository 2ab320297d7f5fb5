"""Where each generated block lives, and how a page's blocks are refreshed.

A page under ``docs/reference/`` is prose written by hand with marked blocks in it; each block is
rewritten from the code by ``python -m kinfer.infra.reference`` and checked by a test.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kinfer.infra.reference.cli import cli_reference
from kinfer.infra.reference.contract import error_codes, wire_messages
from kinfer.infra.reference.metrics import metrics_tables, rules_tables
from kinfer.infra.reference.settings import settings_tables

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference"

BLOCKS: dict[str, dict[str, Callable[[], str]]] = {
    "settings.md": {"settings": settings_tables},
    "cli.md": {"cli": cli_reference},
    "errors.md": {"error-codes": error_codes},
    "metrics.md": {"metrics": metrics_tables, "rules": rules_tables},
    "wire-contract.md": {"messages": wire_messages},
}
"""Page -> its blocks, each rendered by a function of the code it describes."""


def markers(name: str) -> tuple[str, str]:
    return f"<!-- generated:{name} (python -m kinfer.infra.reference) -->", f"<!-- end:{name} -->"


def refreshed(text: str, name: str, body: str) -> str:
    """The page with block ``name`` replaced by ``body``; a page without the block is an error."""
    begin, end = markers(name)
    if begin not in text or end not in text:
        raise ValueError(f"no block {name!r}: the page needs {begin} ... {end}")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}\n{end}{tail}"


def rendered(page: str, text: str) -> str:
    for name, render in BLOCKS[page].items():
        text = refreshed(text, name, render())
    return text


def stale_pages() -> list[str]:
    """Pages whose blocks differ from what the code renders now."""
    return [
        page
        for page in BLOCKS
        if rendered(page, (REFERENCE / page).read_text()) != (REFERENCE / page).read_text()
    ]


def main() -> None:
    for page in BLOCKS:
        path = REFERENCE / page
        text = path.read_text()
        new = rendered(page, text)
        if new != text:
            path.write_text(new)
            print(f"wrote {path}")
