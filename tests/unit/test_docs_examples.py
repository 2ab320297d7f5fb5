"""Every runnable code block of the docs is either run by a test against a live stack or
marked as illustrative, and each one marked as run really is named by a test."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from kinfer.infra.docs_hooks import which_tests_run
from tests.docs_examples import PAGES, RUNNABLE, Block, blocks, example


def all_blocks() -> list[Block]:
    return [b for page in PAGES for b in blocks(page)]


def test_every_runnable_block_is_marked_run_or_illustrative() -> None:
    unmarked = [
        f"{b.page}:{b.line}"
        for b in all_blocks()
        if b.lang in RUNNABLE and not (b.mark or "").startswith(("<!-- example: ", "<!-- illustrative: "))
    ]
    assert not unmarked, f"mark each with <!-- example: NAME --> or <!-- illustrative: why -->: {unmarked}"


def test_each_example_has_one_name_and_a_test_that_runs_it() -> None:
    named = [b for b in all_blocks() if b.example]
    assert named, "no block is run by a test"
    twice = [name for name, n in Counter(b.example for b in named).items() if n > 1]
    assert not twice, f"example names used twice: {twice}"
    unrun = [f"{b.page}: {b.example}" for b in named if b.example and not which_tests_run(b.example)]
    assert not unrun, f"marked as run, but no integration test names them and calls example(): {unrun}"


def test_a_block_is_read_with_the_mark_above_it(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("text\n\n<!-- example: hello -->\n```python\nprint('hi')\n```\n\n```\nout\n```\n")
    first, second = blocks(page, root=tmp_path)
    assert (first.page, first.line, first.lang, first.code) == ("page.md", 4, "python", "print('hi')\n")
    assert first.example == "hello"
    assert (second.lang, second.code, second.example) == ("", "out\n", None)


def test_example_finds_the_named_block() -> None:
    assert "openai.OpenAI(" in example("README.md", "readme-openai")
