"""Keep the code quoted in the docs identical to the code in the repository.

The chapters never copy code by hand. A Markdown file marks where a piece of source goes, and
this tool fills the fenced block that follows the marker:

    <!-- listing: shared/models.py -->                  the whole file
    <!-- listing: shared/models.py:Task -->             one top-level def, class or assignment
    <!-- listing: shared/redis_server.py:RedisServer.start -->    a method of a class
    <!-- diff: phase1_basic/api.py phase2_queue/api.py -->              a unified diff
    <!-- generated: phase4_monitoring.monitoring.metrics:reference_table -->       Markdown a function returns,
    …                                                                   up to the line
    <!-- /generated -->                                                 (not fenced: tables render)

The marker line is followed immediately by a fenced block (```python for a listing, ```diff for
a diff) holding exactly that source. ``--write`` regenerates every block in place; ``--check``
(the default) changes nothing and reports every block that is stale or broken, so a test and CI
fail the moment a quoted listing and its file disagree. Without document arguments, it also
writes or checks the phase-to-phase diff pages in ``docs/diffs/`` (``tasklab_cli.diffpages``).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib
import re
import sys
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tasklab_cli import diffpages

#: The repository root: paths in markers are relative to it.
REPO_ROOT = Path(__file__).resolve().parent.parent

#: Where markers are looked for, relative to the root.
DOCUMENT_GLOBS = ("README.md", "docs/**/*.md", "phase*/README.md")

LISTING_MARKER = re.compile(r"^<!--\s*listing:\s*(?P<path>[^\s:]+)(?::(?P<name>[\w.]+))?\s*-->\s*$")
DIFF_MARKER = re.compile(r"^<!--\s*diff:\s*(?P<old>\S+)\s+(?P<new>\S+)\s*-->\s*$")
GENERATED_MARKER = re.compile(r"^<!--\s*generated:\s*(?P<module>[\w.]+):(?P<function>\w+)\s*-->\s*$")
GENERATED_END = re.compile(r"^<!--\s*/generated\s*-->\s*$")
FENCE_OPEN = re.compile(r"^(?P<fence>`{3,})(?P<lang>[\w+-]*)\s*$")

#: Fence language for a new block, by file suffix (a marker's existing language is kept).
LANGUAGES = {".py": "python", ".toml": "toml", ".md": "markdown", ".yml": "yaml", ".yaml": "yaml", ".sh": "bash"}

DIFF_CONTEXT_LINES = 3


class ListingError(Exception):
    """A marker that cannot be filled: its file or name does not exist."""


# ---------------------------------------------------------------------------------------------
# What a marker stands for


def read_source(root: Path, relative: str) -> str:
    path = root / relative
    if not path.is_file():
        raise ListingError(f"no such file: {relative}")
    return path.read_text()


def _start_line(node: ast.stmt) -> int:
    """First line of a definition, decorators included."""
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def _defined_names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def find_definition(tree: ast.Module, dotted: str) -> ast.stmt:
    """The statement defining ``dotted`` (``name`` or ``Class.member``, at any class depth)."""
    body: list[ast.stmt] = tree.body
    found: ast.stmt | None = None
    parts = dotted.split(".")
    for depth, part in enumerate(parts):
        found = next((node for node in body if part in _defined_names(node)), None)
        if found is None:
            where = "at the top level" if depth == 0 else f"in {'.'.join(parts[:depth])}"
            raise ListingError(f"no definition of {part!r} {where}")
        if depth < len(parts) - 1:
            if not isinstance(found, ast.ClassDef):
                raise ListingError(f"{'.'.join(parts[: depth + 1])} is not a class")
            body = found.body
    assert found is not None
    return found


def extract_definition(source: str, dotted: str, *, path: str = "<source>") -> str:
    """The source of one definition: its decorators, its body, and ``#`` comment lines directly
    above it (no blank line between), dedented when it is nested in a class."""
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        raise ListingError(f"{path} does not parse: {exc}") from None
    node = find_definition(tree, dotted)
    lines = source.splitlines()
    start = _start_line(node) - 1
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    end = node.end_lineno or node.lineno
    return textwrap.dedent("\n".join(lines[start:end]))


def listing_text(root: Path, path: str, name: str | None) -> str:
    source = read_source(root, path)
    if name is None:
        return source.rstrip("\n")
    if not path.endswith(".py"):
        raise ListingError(f"{path}: a named listing (:{name}) needs a Python file")
    return extract_definition(source, name, path=path)


def diff_text(root: Path, old: str, new: str) -> str:
    old_lines = read_source(root, old).splitlines()
    new_lines = read_source(root, new).splitlines()
    diff = difflib.unified_diff(old_lines, new_lines, fromfile=f"a/{old}", tofile=f"b/{new}", n=DIFF_CONTEXT_LINES, lineterm="")
    return "\n".join(diff)


def generated_text(module: str, function: str) -> str:
    """The Markdown that ``module.function()`` returns: a reference built from the code itself."""
    try:
        return str(getattr(importlib.import_module(module), function)()).rstrip("\n")
    except (ImportError, AttributeError, TypeError) as exc:
        raise ListingError(f"cannot load {module}:{function}: {exc}") from None


def _empty_reference() -> str:
    """The smallest generated reference: what the tool's own tests fill a region with."""
    return "| nothing |"


# ---------------------------------------------------------------------------------------------
# Markers and their blocks in a Markdown file


@dataclass
class Block:
    """One marker and the fenced block after it (``fence_start is None`` when there is none)."""

    document: Path
    marker_line: int  # 0-based index of the marker line
    kind: str  # "listing", "diff" or "generated"
    label: str  # what the marker names, for messages
    language: str
    fence_start: int | None = None  # index of the opening fence line
    fence_end: int | None = None  # index of the closing fence line
    current: str | None = None  # what the block holds now
    expected: str | None = None  # what it must hold
    error: str | None = None  # why the expected text could not be built
    fenced: bool = True  # False for generated Markdown, which sits between two marker lines

    @property
    def stale(self) -> bool:
        return self.error is None and self.current != self.expected


def _fence_for(text: str) -> str:
    """A backtick fence longer than any run of backticks inside ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _find_block(lines: list[str], marker: int) -> tuple[int, int, str, str] | None:
    """(opening line, closing line, language, content) of the fence right after ``marker``."""
    opening = marker + 1
    if opening >= len(lines):
        return None
    match = FENCE_OPEN.match(lines[opening])
    if match is None:
        return None
    fence = match.group("fence")
    for index in range(opening + 1, len(lines)):
        stripped = lines[index].strip()
        if stripped.startswith(fence) and set(stripped) == {"`"}:
            return opening, index, match.group("lang"), "\n".join(lines[opening + 1 : index])
    return None


def scan_document(root: Path, document: Path) -> list[Block]:
    """Every marker of ``document``, with the block it has and the text it should have."""
    lines = document.read_text().splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        listing = LISTING_MARKER.match(line)
        diff = DIFF_MARKER.match(line)
        generated = GENERATED_MARKER.match(line)
        if generated is not None:
            block = _generated_block(document, lines, index, generated.group("module"), generated.group("function"))
            blocks.append(block)
            index = (block.fence_end if block.fence_end is not None else index) + 1
            continue
        if listing is None and diff is None:
            # A fenced block that belongs to no marker (an example in prose) is skipped whole:
            # a marker line shown inside it is text, not a marker.
            unrelated = _find_block(lines, index - 1) if FENCE_OPEN.match(line) else None
            index = unrelated[1] + 1 if unrelated is not None else index + 1
            continue
        if listing is not None:
            path, name = listing.group("path"), listing.group("name")
            block = Block(
                document, index, "listing", f"{path}:{name}" if name else path, LANGUAGES.get(Path(path).suffix, "text")
            )
            try:
                block.expected = listing_text(root, path, name)
            except ListingError as exc:
                block.error = str(exc)
        else:
            assert diff is not None
            old, new = diff.group("old"), diff.group("new")
            block = Block(document, index, "diff", f"{old} → {new}", "diff")
            try:
                block.expected = diff_text(root, old, new)
            except ListingError as exc:
                block.error = str(exc)
        found = _find_block(lines, index)
        if found is not None:
            block.fence_start, block.fence_end, language, block.current = found
            block.language = language or block.language
            index = block.fence_end + 1
        else:
            if index + 1 < len(lines) and FENCE_OPEN.match(lines[index + 1]) and block.error is None:
                block.error = "the fenced block after the marker is never closed"
            index += 1
        blocks.append(block)
    return blocks


def _generated_block(document: Path, lines: list[str], marker: int, module: str, function: str) -> Block:
    """A generated region: the lines between the marker and ``<!-- /generated -->``."""
    block = Block(document, marker, "generated", f"{module}:{function}", "markdown", fenced=False)
    end = next((i for i in range(marker + 1, len(lines)) if GENERATED_END.match(lines[i])), None)
    if end is None:
        block.error = "no <!-- /generated --> line after the marker"
        return block
    block.fence_start, block.fence_end = marker, end
    block.current = "\n".join(lines[marker + 1 : end])
    try:
        block.expected = generated_text(module, function)
    except ListingError as exc:
        block.error = str(exc)
    return block


def documents(root: Path) -> list[Path]:
    found: set[Path] = set()
    for pattern in DOCUMENT_GLOBS:
        found.update(p for p in root.glob(pattern) if p.is_file())
    return sorted(found)


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def problems(root: Path, blocks: Iterable[Block]) -> Iterator[str]:
    """One line per block that is broken or stale: ``file:line: what is wrong``."""
    for block in blocks:
        where = f"{_display(block.document, root)}:{block.marker_line + 1}"
        if block.error is not None:
            yield f"{where}: {block.kind} {block.label}: {block.error}"
        elif block.fence_start is None:
            yield f"{where}: {block.kind} {block.label}: no fenced block on the line after the marker (run --write to add one)"
        elif block.stale:
            yield f"{where}: {block.kind} {block.label}: block is stale (its source changed; run --write)"


def rewrite_document(document: Path, blocks: list[Block]) -> bool:
    """Put the expected text in every fillable block of ``document``; return whether it changed."""
    lines = document.read_text().splitlines()
    # From the bottom up, so earlier line numbers stay valid.
    for block in sorted(blocks, key=lambda b: b.marker_line, reverse=True):
        if block.error is not None or block.expected is None:
            continue
        if not block.fenced:
            assert block.fence_end is not None
            if block.stale:
                lines[block.marker_line + 1 : block.fence_end] = block.expected.split("\n")
            continue
        fence = _fence_for(block.expected)
        new = [f"{fence}{block.language}", *block.expected.split("\n"), fence]
        if block.fence_start is None:
            lines[block.marker_line + 1 : block.marker_line + 1] = new
        elif block.stale:
            assert block.fence_end is not None
            lines[block.fence_start : block.fence_end + 1] = new
    text = "\n".join(lines) + "\n"
    if text == document.read_text():
        return False
    document.write_text(text)
    return True


# ---------------------------------------------------------------------------------------------
# Command line


def check(root: Path = REPO_ROOT, paths: Iterable[Path] | None = None) -> list[str]:
    """Every problem in the given documents (all of them by default); empty means up to date."""
    found: list[str] = []
    for document in paths if paths is not None else documents(root):
        found += problems(root, scan_document(root, document))
    return found


def write(root: Path = REPO_ROOT, paths: Iterable[Path] | None = None) -> tuple[list[Path], list[str]]:
    """Regenerate every block; return the documents changed and the problems left (errors)."""
    changed: list[Path] = []
    for document in paths if paths is not None else documents(root):
        if rewrite_document(document, scan_document(root, document)):
            changed.append(document)
    return changed, check(root, paths)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tasklab_cli.listings",
        description="Check (default) or regenerate the code listings and diffs quoted in the docs.\n\n"
        f"Looks in {', '.join(DOCUMENT_GLOBS)} for marker lines,\n"
        "each immediately followed by a fenced block (```python, or ```diff for a diff):\n\n"
        "  <!-- listing: PATH -->               the whole file\n"
        "  <!-- listing: PATH:Name -->          a top-level function, class or assignment, with its\n"
        "                                       decorators and the # comment lines right above it\n"
        "  <!-- listing: PATH:Class.method -->  a member of a class, dedented\n"
        "  <!-- diff: OLD_PATH NEW_PATH -->     unified diff (a/OLD b/NEW, 3 lines of context)\n\n"
        "Paths are relative to the repository root. A marker with no block after it gets one on\n"
        "--write. Markers shown inside an unrelated fenced block (examples in prose) are ignored.",
        epilog="Exit status: 0 when every block matches its source; 1 when a block is stale or missing,\n"
        "or names a file or definition that does not exist (each printed as file:line: problem).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="report stale or broken blocks and change nothing (the default)")
    mode.add_argument("--write", action="store_true", help="regenerate every block in place (what `make docs` runs)")
    parser.add_argument(
        "--root", type=Path, default=REPO_ROOT, help="repository root that marker paths are relative to (default: %(default)s)"
    )
    parser.add_argument(
        "documents", nargs="*", type=Path, help="only these Markdown files (default: every file the globs above match)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = args.root.resolve()
    paths = [p.resolve() for p in args.documents] or None
    if args.write and paths is None:
        # The phase-to-phase diff pages are generated Markdown too (docs/diffs/).
        for page in diffpages.write(root):
            print(f"updated {page}")
    all_documents = paths if paths is not None else documents(root)
    blocks = sum(len(scan_document(root, d)) for d in all_documents)
    if args.write:
        changed, remaining = write(root, all_documents)
        for document in changed:
            print(f"updated {_display(document, root)}")
    else:
        remaining = check(root, all_documents)
    if paths is None:
        remaining += diffpages.problems(root)
    for problem in remaining:
        print(problem)
    verdict = f"{len(remaining)} problem(s)" if remaining else "all up to date"
    print(f"{blocks} block(s) in {len(all_documents)} document(s): {verdict}")
    return 1 if remaining else 0


if __name__ == "__main__":
    sys.exit(main())
