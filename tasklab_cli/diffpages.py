"""One generated page per consecutive pair of phases: ``diff -ru phaseN_x phaseN+1_y``, navigable.

Each phase folder keeps the same file names (``api.py``, ``jobs.py``, ``worker.py`` …), so the
diff of two consecutive folders is exactly that phase's lesson. This module writes it as
``docs/diffs/phaseN-to-phaseM.md``: a table of every file (added, removed, changed or unchanged,
with its line counts), each linking to an anchored section that holds the file's unified diff.

``make docs`` writes the pages (``python -m tasklab_cli.listings --write`` calls :func:`write`);
``python -m tasklab_cli.diffpages`` checks them, as ``tests/docs/test_diff_pages.py`` does: a page
that differs from the folders it was generated from is stale.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

#: The repository root: phase folders are found there.
REPO_ROOT = Path(__file__).resolve().parent.parent

#: Where the pages go, relative to the root.
PAGES_DIR = Path("docs") / "diffs"

PHASE_FOLDER = re.compile(r"^phase(?P<number>\d+)_\w+$")

#: Never part of a phase's lesson: caches and build output.
IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
IGNORED_SUFFIXES = {".pyc", ".pyo"}

DIFF_CONTEXT_LINES = 3

#: Files a phase vendors rather than writes (the Kubernetes CRD schemas its tests validate
#: against): listed with their size, their lines not shown, since nobody reads them as a lesson.
VENDORED_PREFIXES = ("k8s/schemas/",)


@dataclass(frozen=True)
class FileChange:
    """One file of the pair of folders and what happened to it."""

    path: str  # relative to the phase folder, with forward slashes
    kind: str  # "added", "removed", "changed", "unchanged" or "binary"
    diff: str  # the unified diff ("" when unchanged)
    added: int
    removed: int

    @property
    def anchor(self) -> str:
        return "file-" + re.sub(r"[^a-z0-9]+", "-", self.path.lower()).strip("-")


def phase_folders(root: Path) -> list[tuple[int, str]]:
    """(number, folder name) of every phase folder under ``root``, in phase order."""
    found = []
    for child in root.iterdir():
        match = PHASE_FOLDER.match(child.name)
        if match is not None and child.is_dir():
            found.append((int(match.group("number")), child.name))
    return sorted(found)


def consecutive_pairs(root: Path) -> list[tuple[tuple[int, str], tuple[int, str]]]:
    folders = phase_folders(root)
    return [(old, new) for old, new in zip(folders, folders[1:], strict=False) if new[0] == old[0] + 1]


def page_path(old: int, new: int) -> Path:
    return PAGES_DIR / f"phase{old}-to-phase{new}.md"


def _files(folder: Path) -> dict[str, Path]:
    files = {}
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if path.is_file() and not IGNORED_PARTS & set(relative.parts) and path.suffix not in IGNORED_SUFFIXES:
            files[relative.as_posix()] = path
    return files


def _text(path: Path | None) -> list[str] | None:
    """The file's lines, ``[]`` when it does not exist, ``None`` when it is not text."""
    if path is None:
        return []
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return None


def compare(root: Path, old_folder: str, new_folder: str) -> list[FileChange]:
    """Every file of the two folders, in path order, with its diff."""
    old_files, new_files = _files(root / old_folder), _files(root / new_folder)
    changes = []
    for path in sorted(old_files.keys() | new_files.keys()):
        old_path, new_path = old_files.get(path), new_files.get(path)
        old_lines, new_lines = _text(old_path), _text(new_path)
        if old_path is not None and new_path is not None and old_path.read_bytes() == new_path.read_bytes():
            changes.append(FileChange(path, "unchanged", "", 0, 0))
            continue
        if old_lines is None or new_lines is None:
            changes.append(FileChange(path, "binary", "", 0, 0))
            continue
        diff = list(
            difflib.unified_diff(
                old_lines,
                new_lines,
                fromfile=f"a/{old_folder}/{path}" if old_path else "/dev/null",
                tofile=f"b/{new_folder}/{path}" if new_path else "/dev/null",
                n=DIFF_CONTEXT_LINES,
                lineterm="",
            )
        )
        body = diff[2:]
        added = sum(1 for line in body if line.startswith("+"))
        removed = sum(1 for line in body if line.startswith("-"))
        kind = "added" if old_path is None else "removed" if new_path is None else "changed"
        changes.append(FileChange(path, kind, "\n".join(diff), added, removed))
    return changes


def _fence_for(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _chapter(root: Path, number: int) -> str | None:
    """The chapter file of a phase (``01-basic.md`` for 1), if it exists."""
    found = sorted((root / "docs").glob(f"{number:02d}-*.md"))
    return found[0].name if found else None


def render(root: Path, old: tuple[int, str], new: tuple[int, str]) -> str:
    """The Markdown page for one pair of phase folders."""
    (old_number, old_folder), (new_number, new_folder) = old, new
    changes = compare(root, old_folder, new_folder)
    chapter = _chapter(root, new_number)
    explained = f"[Chapter {new_number}](../{chapter}) explains it" if chapter else f"Chapter {new_number} explains it"
    lines = [
        f"# Phase {old_number} → phase {new_number}",
        "",
        "<!-- Generated by `make docs` from the two phase folders (tasklab_cli/diffpages.py): do not edit by hand. -->",
        "",
        f"Every file of `{old_folder}/` and `{new_folder}/`, compared: the output of",
        f"`diff -ru {old_folder} {new_folder}`, one section per file. {explained}. A file marked",
        "unchanged is a byte-identical copy of the previous phase's (copy forward); vendored files",
        "are listed, not shown.",
        "",
        "| file | change | lines |",
        "|---|---|---|",
    ]
    for change in changes:
        shown = change.diff and not change.path.startswith(VENDORED_PREFIXES)
        name = f"[`{change.path}`](#{change.anchor})" if shown else f"`{change.path}`"
        counts = f"+{change.added} −{change.removed}" if change.diff else ""
        kind = f"{change.kind} (vendored)" if change.diff and not shown else change.kind
        lines.append(f"| {name} | {kind} | {counts} |")
    for change in changes:
        if not change.diff or change.path.startswith(VENDORED_PREFIXES):
            continue
        fence = _fence_for(change.diff)
        lines += ["", f"## `{change.path}` {{#{change.anchor}}}", "", f"{change.kind}: +{change.added} −{change.removed}", ""]
        lines += [f"{fence}diff", change.diff, fence]
    return "\n".join(lines) + "\n"


def expected_pages(root: Path) -> dict[Path, str]:
    """Every page that should exist, relative to ``root``, with its text."""
    return {page_path(old[0], new[0]): render(root, old, new) for old, new in consecutive_pairs(root)}


def problems(root: Path = REPO_ROOT) -> list[str]:
    """One line per page that is missing, stale or no longer generated; empty means up to date."""
    expected = expected_pages(root)
    found = []
    for relative, text in expected.items():
        path = root / relative
        if not path.is_file():
            found.append(f"{relative}: missing (run make docs)")
        elif path.read_text() != text:
            found.append(f"{relative}: stale, the phase folders changed (run make docs)")
    pages_dir = root / PAGES_DIR
    if pages_dir.is_dir():
        for path in sorted(pages_dir.glob("*.md")):
            if path.relative_to(root) not in expected:
                found.append(f"{path.relative_to(root)}: no pair of phase folders makes this page (run make docs)")
    return found


def write(root: Path = REPO_ROOT) -> list[Path]:
    """Write every page, delete pages no pair makes; return the pages changed."""
    expected = expected_pages(root)
    changed = []
    for relative, text in expected.items():
        path = root / relative
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(relative)
    pages_dir = root / PAGES_DIR
    if pages_dir.is_dir():
        for path in sorted(pages_dir.glob("*.md")):
            if path.relative_to(root) not in expected:
                path.unlink()
                changed.append(path.relative_to(root))
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tasklab_cli.diffpages",
        description=f"Check (default) or write the phase-to-phase diff pages in {PAGES_DIR}/.",
    )
    parser.add_argument("--write", action="store_true", help="write the pages (make docs does this)")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root (default: %(default)s)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.write:
        for path in write(root):
            print(f"updated {path}")
    found = problems(root)
    for problem in found:
        print(problem)
    print(f"{len(expected_pages(root))} diff page(s): " + (f"{len(found)} problem(s)" if found else "all up to date"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
