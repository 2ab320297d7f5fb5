"""MkDocs hooks of the docs site (``mkdocs.yml`` names this file).

Pictures are made at build time from sources in the repository, never committed as binaries
drawn by hand: each ``docs/diagrams/NAME.dot`` becomes ``diagrams/NAME.svg`` (Graphviz's ``dot``,
Debian's ``graphviz``), and the benchmark plots in ``benchmarks/figures/`` are served as
``figures/NAME.png``. A tested example (``<!-- example: NAME -->`` before its block) gets a line
saying which test runs it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "benchmarks" / "figures"
EXAMPLE = re.compile(r"^<!-- example: ([a-z0-9-]+) -->$", re.M)


def drawn(source: Path) -> str:
    dot = shutil.which("dot")
    if dot is None:
        raise PluginError("Graphviz's dot is missing: `make setup` installs Debian's graphviz")
    done = subprocess.run([dot, "-Tsvg", str(source)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PluginError(f"dot failed on {source.name}: {done.stderr.strip()}")
    return done.stdout


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for source in sorted((Path(config.docs_dir) / "diagrams").glob("*.dot")):
        files.append(File.generated(config, f"diagrams/{source.stem}.svg", content=drawn(source)))
    for figure in sorted(FIGURES.glob("*.png")):
        files.append(File.generated(config, f"figures/{figure.name}", abs_src_path=str(figure)))
    return files


def which_tests_run(name: str) -> list[str]:
    """Integration test files that run the example ``name``: they name it and call ``example()``
    (``tests/docs_examples.py``). The docs' unit test holds every run-mark to this same rule."""
    found = []
    for path in sorted((ROOT / "tests" / "integration").rglob("test_*.py")):
        text = path.read_text()
        if f'"{name}"' in text and "example(" in text:
            found.append(str(path.relative_to(ROOT)))
    return found


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    def note(match: re.Match[str]) -> str:
        where = ", ".join(f"`{t}`" for t in which_tests_run(match.group(1))) or "no test (yet)"
        return f"{match.group(0)}\n*Run against a live stack by {where}.*\n"

    return EXAMPLE.sub(note, markdown)
