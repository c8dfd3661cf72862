"""Markdown the tutorial site quotes from elsewhere in the repository, kept in sync by ``make docs``.

The site is built from ``docs/`` alone, so a chapter cannot link to ``../README.md``. What the
site needs from the README is generated into the page instead, with a
``<!-- generated: tasklab_cli.sitecontent:… -->`` region (see ``tasklab_cli.listings``).
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def readme_section(heading: str, root: Path = REPO_ROOT) -> str:
    """The body of the README's ``## heading`` section, up to the next ``##`` heading."""
    text = (root / "README.md").read_text()
    marker = f"\n## {heading}\n"
    if marker not in text:
        raise LookupError(f"README.md has no '## {heading}' section")
    return text.split(marker, 1)[1].split("\n## ", 1)[0].strip("\n")


def http_contract() -> str:
    """The HTTP contract every phase serves, as the README states it."""
    return readme_section("The HTTP contract")
