"""Text from docstrings and help strings made safe for one Markdown table cell."""

from __future__ import annotations

import re

_CODE = re.compile(r"(`[^`]*`)")


def cell(text: str) -> str:
    """One line; ``|`` escaped; ``<`` outside code spans written as an entity, so that
    ``<state_dir>`` reads as text and not as an HTML tag the renderer drops."""
    parts = _CODE.split(" ".join(text.replace("``", "`").split()))
    return "".join(p if p.startswith("`") else p.replace("<", "&lt;") for p in parts).replace("|", "\\|")
