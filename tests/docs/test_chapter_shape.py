"""Why before how: every chapter, and every part of one, has the same shape, in this order.

Why (what broke in the previous phase) · The idea (a diagram and a paragraph) · Walkthrough
(the real code, one heading per idea) · What changed (the generated diff, or a link to its page,
once the reader knows what to look for) · Run it · Break it (runnable: the reader breaks it
too) · Test it · Recap, with what it still cannot do.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = sorted((ROOT / "docs").glob("0*.md"))
SHAPE = ["Why", "The idea", "Walkthrough", "What changed", "Run it", "Break it", "Test it", "Recap"]


def sections(markdown: str) -> list[tuple[str, str]]:
    """The ``##`` sections of a page, outside fenced blocks: (heading, body)."""
    found: list[tuple[str, str]] = []
    fence = None
    for line in markdown.splitlines():
        opening = re.match(r"^(`{3,})", line)
        if fence is None and opening:
            fence = opening.group(1)
        elif fence is not None and line.strip() == fence:
            fence = None
        if fence is None and line.startswith("## "):
            found.append((line[3:].strip(), ""))
        elif found:
            found[-1] = (found[-1][0], found[-1][1] + line + "\n")
    return found


def shape(markdown: str) -> list[str]:
    """The page's headings that name a step of SHAPE, in order ("Break it, 2: …" is "Break it")."""
    steps: list[str] = []
    for heading, _ in sections(markdown):
        step = next(
            (name for name in SHAPE if heading == name or heading.startswith(name + ":") or heading.startswith(name + ",")), None
        )
        if step is not None and (not steps or steps[-1] != step):
            steps.append(step)
    return steps


@pytest.mark.parametrize("page", CHAPTERS, ids=[path.stem for path in CHAPTERS])
def test_the_page_has_the_shape(page: Path) -> None:
    markdown = page.read_text()
    parts = dict(sections(markdown))

    assert shape(markdown) == SHAPE
    assert "```mermaid" in parts["The idea"], "The idea: a diagram"
    assert re.search(r"^### What it still cannot do", parts["Recap"], re.MULTILINE), "Recap: what it still cannot do"


@pytest.mark.parametrize("page", CHAPTERS, ids=[path.stem for path in CHAPTERS])
def test_the_reader_breaks_it_with_runnable_blocks(page: Path) -> None:
    breaks = [body for heading, body in sections(page.read_text()) if heading.startswith("Break it")]
    # Chapter 6's first part runs on Docker; its second part breaks what runs here without it.
    marker = "<!-- run docker" if page.name == "06-docker.md" else "<!-- run"

    assert any(marker in body for body in breaks), f"{page.name}: no runnable block under Break it"


def test_the_shape_check_sees_order_and_fences() -> None:
    """Guards the tests above: a heading inside a code block is not a section, and order counts."""
    page = "## Why\n```text\n## Run it\n```\n## The idea\n## Walkthrough\n"
    assert shape(page) == ["Why", "The idea", "Walkthrough"]
    assert shape("## Walkthrough\n## Why\n") == ["Walkthrough", "Why"]
