"""Keep the phase folders honest copies of each other: ``python -m tasklab_cli.copyforward``.

Each phase folder starts as a copy of the previous one and changes only what its lesson
changes, so ``diff -ru phase3_retry phase4_monitoring`` is chapter 4. Copies drift, so the
rule is checked. Each phase's README (from phase 2 on) lists, between two markers, the files it
adds, changes and removes since the previous phase::

    <!-- copy-forward: phase3_retry -->
    | file | since phase 3 |
    |---|---|
    | `monitoring/` | added: metrics, logs, `/stats`, the dashboard |
    | `api.py` | changed: serves `/metrics` and `/stats` |
    <!-- /copy-forward -->

``check`` (the default) fails on any difference the list does not declare, and on any entry
the folders contradict (a file listed as changed that is still identical, an added one the
previous phase already has). Every other file must be byte-identical to the previous phase's.

``carry`` brings a fix forward. Edit the file in the first phase that has it; ``carry`` then
walks the later phases in order and, for each file whose working copy differs from git's
``HEAD`` in one phase (or is new there), updates the next phase's copy: replaced when that copy was identical to
the old version (the phase does not change it), merged three-way with ``git merge-file`` when
the phase changes the file (its own changes kept, the fix applied), left alone and reported
when the edit does not apply there. Run ``check`` after it.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: The repository root: phase folders are found here.
REPO_ROOT = Path(__file__).resolve().parent.parent

#: The phase folders, in the order each copies the previous one.
PHASE_FOLDERS: tuple[str, ...] = (
    "phase1_basic",
    "phase2_queue",
    "phase3_retry",
    "phase4_monitoring",
    "phase5_scaling",
    "phase6_docker",
)

#: What is not part of a phase's code: caches, and the files every phase writes for itself.
IGNORED_PARTS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache"})
IGNORED_NAMES = frozenset({"README.md"})

BLOCK_START = re.compile(r"^<!--\s*copy-forward:\s*(?P<previous>\w+)\s*-->\s*$")
BLOCK_END = re.compile(r"^<!--\s*/copy-forward\s*-->\s*$")
ROW = re.compile(r"^\|\s*`(?P<path>[^`]+)`\s*\|\s*(?P<kind>added|changed|removed)\b", re.IGNORECASE)


@dataclass
class Declared:
    """What a phase's README says it did to the previous phase's files."""

    previous: str
    added: set[str] = field(default_factory=set)
    changed: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)

    def covers(self, kind: str, path: str) -> bool:
        """Whether ``path`` is declared as ``kind``, itself or through a listed folder (``monitoring/``)."""
        entries: set[str] = getattr(self, kind)
        return path in entries or any(entry.endswith("/") and path.startswith(entry) for entry in entries)


def phase_files(folder: Path) -> set[str]:
    """The files of a phase folder, relative to it, without caches and the README."""
    files: set[str] = set()
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if path.is_file() and not IGNORED_PARTS & set(relative.parts) and relative.name not in IGNORED_NAMES:
            files.add(relative.as_posix())
    return files


def read_declared(readme: Path) -> Declared | None:
    """The list between the copy-forward markers of ``readme``, or ``None`` when it has none."""
    declared: Declared | None = None
    inside = False
    for line in readme.read_text(encoding="utf-8").splitlines():
        if start := BLOCK_START.match(line):
            declared, inside = Declared(previous=start["previous"]), True
        elif BLOCK_END.match(line):
            inside = False
        elif inside and declared is not None and (row := ROW.match(line)):
            getattr(declared, row["kind"].lower()).add(row["path"])
    return declared


def problems(root: Path, previous: str, current: str) -> Iterator[str]:
    """Every way ``current`` differs from ``previous`` that its README does not declare, and every false entry."""
    readme = root / current / "README.md"
    declared = read_declared(readme) if readme.exists() else None
    if declared is None:
        yield f"{current}/README.md: no <!-- copy-forward: {previous} --> list of the files it adds and changes"
        return
    if declared.previous != previous:
        yield f"{current}/README.md: its list compares with {declared.previous}, not with {previous}"
    old, new = phase_files(root / previous), phase_files(root / current)
    for path in sorted(new - old):
        if not declared.covers("added", path):
            yield f"{current}/{path}: new since {previous}, not listed as added"
    for path in sorted(old - new):
        if not declared.covers("removed", path):
            yield f"{current}/{path}: in {previous} but not here, not listed as removed"
    for path in sorted(old & new):
        same = filecmp.cmp(root / previous / path, root / current / path, shallow=False)
        if not same and not declared.covers("changed", path):
            yield f"{current}/{path}: differs from {previous}/{path}, not listed as changed (make carry-forward?)"
        if same and path in declared.changed:
            yield f"{current}/{path}: listed as changed, but identical to {previous}/{path}"
        if declared.covers("added", path) and not declared.covers("changed", path):
            yield f"{current}/{path}: listed as added, but {previous} has it"
    for path in sorted(declared.changed - old - {p for p in declared.changed if p.endswith("/")}):
        yield f"{current}/{path}: listed as changed, but {previous} has no such file"


def check(root: Path = REPO_ROOT) -> list[str]:
    """All problems across every pair of neighbouring phases."""
    found: list[str] = []
    for previous, current in zip(PHASE_FOLDERS, PHASE_FOLDERS[1:], strict=False):
        found.extend(problems(root, previous, current))
    return found


def committed(root: Path, path: str) -> bytes | None:
    """The file at ``HEAD``, or ``None`` when git has no such file there."""
    shown = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=root, capture_output=True, check=False)
    return shown.stdout if shown.returncode == 0 else None


def carry(root: Path = REPO_ROOT) -> list[str]:
    """Bring edits forward phase by phase; return what was done, one line each (conflicts included)."""
    done: list[str] = []
    for previous, current in zip(PHASE_FOLDERS, PHASE_FOLDERS[1:], strict=False):
        readme = root / current / "README.md"
        declared = read_declared(readme) if readme.exists() else None
        for path in sorted(phase_files(root / previous) - phase_files(root / current)):
            # A file new in the previous phase (not in git yet) is kept by the later phases too,
            # unless one says it removes it.
            removed = declared is not None and declared.covers("removed", path)
            if not removed and committed(root, f"{previous}/{path}") is None and committed(root, f"{current}/{path}") is None:
                (root / current / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(root / previous / path, root / current / path)
                done.append(f"{current}/{path}: new in {previous}, copied")
        for path in sorted(phase_files(root / previous) & phase_files(root / current)):
            source, target = root / previous / path, root / current / path
            before = committed(root, f"{previous}/{path}")
            if before is None:
                # New in this change in both phases: the later one is still a plain copy.
                if committed(root, f"{current}/{path}") is None and source.read_bytes() != target.read_bytes():
                    shutil.copyfile(source, target)
                    done.append(f"{current}/{path}: new in {previous}, copied again")
                continue
            if source.read_bytes() in (before, target.read_bytes()):
                continue  # not edited in the previous phase, or carried already: nothing to do
            keeps_it = declared is not None and not declared.covers("changed", path)
            if keeps_it or target.read_bytes() == before:  # a copy by the README's list: stays one
                shutil.copyfile(source, target)
                done.append(f"{current}/{path}: copied from {previous}")
                continue
            base = target.with_name(target.name + ".carry-base")
            base.write_bytes(before)
            try:
                merge = ["git", "merge-file", "-p", str(target), str(base), str(source)]
                merged = subprocess.run(merge, capture_output=True, check=False)
            finally:
                base.unlink()
            if merged.returncode == 0:
                target.write_bytes(merged.stdout)
                done.append(f"{current}/{path}: merged ({previous}'s edit, {current}'s own changes kept)")
            else:  # left as it was: a half-merged file with conflict markers helps nobody
                done.append(f"{current}/{path}: CONFLICT, {previous}'s edit does not apply here: make it by hand")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tasklab_cli.copyforward",
        description="Check that each phase folder differs from the previous one only where its README says, "
        "or carry an edit forward to the later phases' copies.",
    )
    parser.add_argument("command", nargs="?", choices=("check", "carry"), default="check")
    arguments = parser.parse_args(argv)
    if arguments.command == "carry":
        lines = carry()
        print("\n".join(lines) if lines else "nothing to carry: no phase file differs from HEAD")
        return 1 if any("CONFLICT" in line for line in lines) else 0
    found = check()
    for line in found:
        print(line)
    if not found:
        print(f"the {len(PHASE_FOLDERS)} phase folders differ only where their READMEs say")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
