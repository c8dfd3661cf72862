"""One sitting per page: no chapter, or part of a chapter, takes over 30 minutes to read (prose at
200 words a minute, code at 30 lines a minute: ``tasklab_cli.sitecontent.reading``), nor runs
much past 900 lines. The front page's map lists every page with those minutes, computed from the
pages (``listings --check`` fails when a page changed and the map was not regenerated)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasklab_cli import sitecontent

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = sorted((ROOT / "docs").glob("0*.md"))
MINUTES = 30
LINES = 900


@pytest.mark.parametrize("page", CHAPTERS, ids=[path.stem for path in CHAPTERS])
def test_a_page_is_one_sitting(page: Path) -> None:
    reading = sitecontent.reading_of(page)

    assert reading.minutes <= MINUTES, f"{page.name}: {reading.minutes:.1f} min to read; split it into parts"
    assert reading.lines <= LINES, f"{page.name}: {reading.lines} lines"


def test_the_benchmarks_page_is_one_sitting() -> None:
    """The page of one run's figures and its method reads in one sitting too, generated tables included."""
    reading = sitecontent.reading_of(ROOT / "docs" / "benchmarks.md")

    assert reading.minutes <= MINUTES, f"benchmarks.md: {reading.minutes:.1f} min to read"
    assert reading.lines <= LINES, f"benchmarks.md: {reading.lines} lines"


def test_the_front_page_maps_every_chapter_and_part() -> None:
    mapped = [name for name, *_ in sitecontent.CHAPTER_MAP]
    index = (ROOT / "docs" / "index.md").read_text()

    assert mapped == [path.name for path in CHAPTERS]
    assert "<!-- generated: tasklab_cli.sitecontent:chapter_map -->" in index
    for name in mapped:
        assert f"]({name})" in index


def test_reading_time_counts_prose_and_code() -> None:
    """Guards the arithmetic: 200 words of prose and 30 lines of code are a minute each."""
    markdown = ("word " * 200) + "\n\n<!-- listing: x.py -->\n```python\n" + "x = 1\n" * 30 + "```\n"

    reading = sitecontent.reading(markdown)

    assert (reading.words, reading.code_lines) == (200, 30)
    assert reading.minutes == pytest.approx(2.0)
