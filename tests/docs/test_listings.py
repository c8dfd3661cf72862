"""The docs quote the code exactly: every listing and diff matches its source right now.

``tasklab_cli.listings`` fills the fenced block after each ``<!-- listing: … -->`` or
``<!-- diff: … -->`` marker. If this test fails, a file the docs quote has changed: run
``make docs`` (``python -m tasklab_cli.listings --write``), read the new text in the chapter,
and fix the prose around it if it no longer explains the code.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tasklab_cli import listings

SOURCE = '''\
"""A module to quote."""

import functools

#: How many times to say it.
TIMES = 2


def helper() -> int:
    return 1


@functools.cache
def greet(name: str) -> str:
    """Say hello."""
    return f"hello {name}" * TIMES


class Greeter:
    prefix = "hi"

    def greet(self, name: str) -> str:
        return f"{self.prefix} {name}"
'''

GREET = '''\
@functools.cache
def greet(name: str) -> str:
    """Say hello."""
    return f"hello {name}" * TIMES'''


def test_every_listing_in_the_repository_matches_its_source() -> None:
    problems = listings.check()

    assert not problems, "stale or broken listings (run `make docs`):\n" + "\n".join(problems)


def test_the_repository_has_listings_to_check() -> None:
    """Guards the test above against passing because it found nothing."""
    blocks = [b for d in listings.documents(listings.REPO_ROOT) for b in listings.scan_document(listings.REPO_ROOT, d)]

    assert len(blocks) >= 10
    assert {b.kind for b in blocks} == {"listing", "diff", "generated"}


# ---------------------------------------------------------------------------------------------
# The tool itself, on a small repository in a temporary folder


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(SOURCE)
    (tmp_path / "docs").mkdir()
    return tmp_path


def write_doc(repo: Path, body: str) -> Path:
    document = repo / "docs" / "chapter.md"
    document.write_text(body)
    return document


def test_a_named_listing_is_the_definition_with_its_decorators() -> None:
    assert listings.extract_definition(SOURCE, "greet") == GREET


def test_a_listing_includes_the_comment_right_above_and_a_method_is_dedented() -> None:
    assert listings.extract_definition(SOURCE, "TIMES") == "#: How many times to say it.\nTIMES = 2"
    assert listings.extract_definition(SOURCE, "Greeter.greet").startswith("def greet(self, name: str) -> str:\n    return")


def test_an_up_to_date_block_passes(repo: Path) -> None:
    write_doc(repo, f"Text.\n\n<!-- listing: pkg/mod.py:greet -->\n```python\n{GREET}\n```\n\nMore text.\n")

    assert listings.check(repo) == []


def test_a_stale_block_is_reported_with_file_and_line(repo: Path) -> None:
    write_doc(repo, "# Chapter\n\n<!-- listing: pkg/mod.py:helper -->\n```python\ndef helper() -> int:\n    return 0\n```\n")

    [problem] = listings.check(repo)

    assert problem.startswith("docs/chapter.md:3: listing pkg/mod.py:helper")
    assert "stale" in problem
    assert listings.main(["--root", str(repo)]) == 1


def test_write_fixes_a_stale_block_and_leaves_the_prose_alone(repo: Path) -> None:
    document = write_doc(repo, "Before.\n<!-- listing: pkg/mod.py:helper -->\n```python\nold\n```\nAfter.\n")

    assert listings.main(["--write", "--root", str(repo)]) == 0

    assert (
        document.read_text()
        == "Before.\n<!-- listing: pkg/mod.py:helper -->\n```python\ndef helper() -> int:\n    return 1\n```\nAfter.\n"
    )
    assert listings.check(repo) == []


def test_write_adds_the_block_a_new_marker_lacks(repo: Path) -> None:
    document = write_doc(repo, "<!-- listing: pkg/mod.py:TIMES -->\nText.\n")

    assert listings.check(repo) != []
    listings.write(repo)

    assert (
        document.read_text()
        == "<!-- listing: pkg/mod.py:TIMES -->\n```python\n#: How many times to say it.\nTIMES = 2\n```\nText.\n"
    )


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("<!-- listing: pkg/mod.py:missing -->", "no definition of 'missing'"),
        ("<!-- listing: pkg/mod.py:Greeter.missing -->", "no definition of 'missing' in Greeter"),
        ("<!-- listing: pkg/gone.py -->", "no such file: pkg/gone.py"),
        ("<!-- diff: pkg/mod.py pkg/gone.py -->", "no such file: pkg/gone.py"),
    ],
)
def test_a_missing_file_or_name_is_an_error_even_with_write(repo: Path, marker: str, message: str) -> None:
    document = write_doc(repo, f"{marker}\n```python\nkept\n```\n")

    [problem] = listings.write(repo)[1]

    assert problem.startswith("docs/chapter.md:1:") and message in problem
    assert "kept" in document.read_text()
    assert listings.main(["--write", "--root", str(repo)]) == 1


def test_a_diff_block_is_the_unified_diff_of_the_two_files(repo: Path) -> None:
    (repo / "pkg" / "new.py").write_text(SOURCE.replace("TIMES = 2", "TIMES = 3"))
    document = write_doc(repo, "<!-- diff: pkg/mod.py pkg/new.py -->\n")

    listings.write(repo)

    text = document.read_text()
    assert "```diff\n--- a/pkg/mod.py\n+++ b/pkg/new.py\n@@ -3,7 +3,7 @@\n" in text
    assert "\n-TIMES = 2\n+TIMES = 3\n" in text
    assert listings.check(repo) == []


def test_a_marker_inside_an_example_block_is_not_a_marker(repo: Path) -> None:
    write_doc(repo, "How to quote code:\n\n````markdown\n<!-- listing: pkg/gone.py -->\n```python\n```\n````\n")

    assert listings.check(repo) == []


# ---------------------------------------------------------------------------------------------
# Diagrams that restate code


def test_the_lifecycle_diagram_in_the_index_is_the_transition_table() -> None:
    """docs/index.md draws ALLOWED_TRANSITIONS as a mermaid stateDiagram: the same arrows, no more."""
    from phase5_scaling.transitions import ALLOWED_TRANSITIONS

    text = (listings.REPO_ROOT / "docs" / "index.md").read_text()
    diagram = text.split("```mermaid\nstateDiagram-v2\n", 1)[1].split("```", 1)[0]
    arrows = {
        (source, target.split(":")[0].strip())
        for line in diagram.splitlines()
        if "-->" in line
        for source, target in [(part.strip() for part in line.split("-->", 1))]
        if source != "[*]"
    }

    assert arrows == {(s.value, t.value) for s, targets in ALLOWED_TRANSITIONS.items() for t in targets}


def test_the_readme_configuration_table_names_every_setting_with_its_default() -> None:
    from shared.settings import Settings

    text = (listings.REPO_ROOT / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| `")]
    documented = {name.strip().strip("`"): default.strip().strip("`") for name, default in rows}

    expected = {
        name.upper(): "unset" if field.default is None else str(field.default) for name, field in Settings.model_fields.items()
    }
    assert documented == expected


def test_an_unclosed_block_is_an_error_and_write_leaves_it_alone(repo: Path) -> None:
    document = write_doc(repo, "<!-- listing: pkg/mod.py:helper -->\n```python\ndef helper():\n")

    [problem] = listings.write(repo)[1]

    assert "never closed" in problem
    assert document.read_text() == "<!-- listing: pkg/mod.py:helper -->\n```python\ndef helper():\n"


def test_a_generated_region_is_the_markdown_its_function_returns_unfenced(repo: Path) -> None:
    document = write_doc(repo, "Reference:\n<!-- generated: string:capwords -->\nold text\n<!-- /generated -->\nAfter.\n")

    # string.capwords() needs an argument: a function that cannot produce text is an error.
    [problem] = listings.check(repo)
    assert "cannot load" in problem or "generated" in problem

    document.write_text(
        "Reference:\n<!-- generated: tasklab_cli.listings:_empty_reference -->\nstale\n<!-- /generated -->\nAfter.\n"
    )
    assert "stale" in listings.check(repo)[0]
    listings.write(repo)
    assert (
        document.read_text()
        == "Reference:\n<!-- generated: tasklab_cli.listings:_empty_reference -->\n| nothing |\n<!-- /generated -->\nAfter.\n"
    )
    assert listings.check(repo) == []


def test_a_generated_marker_without_its_end_line_is_an_error(repo: Path) -> None:
    write_doc(repo, "<!-- generated: tasklab_cli.listings:_empty_reference -->\n| nothing |\n")

    [problem] = listings.check(repo)

    assert "no <!-- /generated -->" in problem
