"""The docs' reference pages are the code's own declarations, rendered: a page that drifted
from the settings, the CLI, the error codes, the metrics or the JSON Schemas fails here."""

from __future__ import annotations

import pytest

from kinfer.infra.reference.pages import markers, refreshed, stale_pages


def test_no_reference_page_is_stale() -> None:
    assert not stale_pages(), "regenerate with `python -m kinfer.infra.reference`"


def test_a_block_is_replaced_between_its_markers_and_nothing_else_moves() -> None:
    begin, end = markers("x")
    page = f"# Title\n\nprose\n{begin}\nold\n{end}\nmore prose\n"
    assert refreshed(page, "x", "new") == f"# Title\n\nprose\n{begin}\nnew\n{end}\nmore prose\n"


def test_a_page_missing_its_block_is_an_error_not_a_silent_skip() -> None:
    with pytest.raises(ValueError, match="no block 'settings'"):
        refreshed("# Settings\n", "settings", "tables")
