"""No private vocabulary: the tutorial says nothing that only this repository's history explains.

A learner has the chapters and the code, not the tracker the project was planned in. So no
prose or comment names an issue of this repository ("issue 7's targets"), the planning notes
("the seeds ask for"), or a target by the issue that set it; and every acronym a chapter uses is
spelled out where the chapter first uses it in prose (``GCRA`` in chapter 6 comes with "generic
cell rate algorithm"). Each chapter is a page of its own, so each spells out its own.
"""

from __future__ import annotations

import re

from tests.docs.test_references import ROOT, docstrings_and_comments, markdown_files, python_files

#: The history's words: an issue of this repository by number, and the planning notes.
PRIVATE = re.compile(r"(?<![\w'’])issue\s*#?\d+|\bthe seeds\b|\bseeds'", re.IGNORECASE)
#: "RQ's issue #1420" names another project's public tracker: a reference a reader can follow.
ANOTHER_PROJECTS = re.compile(r"(?:RQ|Celery|redis-py|SQLAlchemy|Starlette|uvicorn)(?:'s)?\s+issue\s*#?\d+", re.IGNORECASE)

#: This file names the words it looks for.
NOT_YET_REWORDED = ("tests/docs/test_vocabulary.py",)

#: The acronyms the chapters use, and what each must be spelled out as where first used.
ACRONYMS = {
    "AOF": "append-only file",
    "ASGI": "Asynchronous Server Gateway Interface",
    "FIFO": "first in, first out",
    "GCRA": "generic cell rate algorithm",
    "OOM": "out of memory",
    "ORM": "object-relational mapper",
    "TAT": "theoretical arrival time",
    "TTL": "time to live",
    "WAL": "write-ahead log",
}
CHAPTERS = sorted((ROOT / "docs").glob("0*.md"))


def prose(markdown: str) -> str:
    """The Markdown without its fenced blocks and HTML comments: what a reader reads as text."""
    markdown = re.sub(r"<!--.*?-->", "", markdown, flags=re.DOTALL)
    return re.sub(r"^(```|~~~).*?^\1[ \t]*$", "", markdown, flags=re.DOTALL | re.MULTILINE)


def private_words(text: str) -> list[str]:
    cleaned = ANOTHER_PROJECTS.sub("", text)
    return [match.group(0) for match in PRIVATE.finditer(cleaned)]


def unexplained_acronyms(markdown: str) -> list[str]:
    """The acronyms whose first use in the prose comes without their expansion nearby."""
    text = prose(markdown)
    missing = []
    for acronym, expansion in ACRONYMS.items():
        first = re.search(rf"\b{acronym}\b", text)
        if first is None:
            continue
        nearby = text[max(0, first.start() - 300) : first.end() + 300].lower().replace("\n", " ")
        if re.sub(r"[\s-]+", " ", expansion.lower()) not in re.sub(r"[\s-]+", " ", nearby):
            missing.append(f"{acronym} ({expansion})")
    return missing


def test_no_prose_or_comment_names_the_projects_history() -> None:
    found = []
    for path in markdown_files():
        found += [f"{path.relative_to(ROOT)}: {word!r}" for word in private_words(path.read_text())]
    for path in python_files():
        if path.relative_to(ROOT).as_posix().startswith(NOT_YET_REWORDED):
            continue
        found += [f"{path.relative_to(ROOT)}: {word!r}" for word in private_words(docstrings_and_comments(path.read_text()))]
    assert not found, "\n".join(found)


def test_every_acronym_is_spelled_out_where_a_chapter_first_uses_it() -> None:
    missing = {path.name: unexplained_acronyms(path.read_text()) for path in CHAPTERS}
    assert not {name: acronyms for name, acronyms in missing.items() if acronyms}


def test_the_checks_catch_what_they_are_for() -> None:
    """Guards the two tests above."""
    assert private_words("issue 7's targets; the seeds' BRPOP; Issue #22") == ["issue 7", "the seeds", "Issue #22"]
    assert private_words("RQ's issue #1420 asks for it; a seed of 42") == []
    assert unexplained_acronyms("The GCRA limits.\n\n```text\nTAT\n```\n") == ["GCRA (generic cell rate algorithm)"]
    assert unexplained_acronyms("The generic cell rate algorithm (GCRA) limits.") == []
