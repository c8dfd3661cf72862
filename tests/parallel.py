"""How ``make test`` splits the suite between its pytest-xdist processes.

Most modules start real servers in module-scoped fixtures (a phase's API, its workers, a browser).
Split a module's tests across processes and each process starts those servers again; keep a whole
module in one process and the biggest module decides the wall time. So the unit of work is a
module *and* the module- or session-scoped parameters it runs with: the contract suite on phase 3
with SQLite is one unit, on phase 4 with PostgreSQL another, and each can go to either process.
Every test gets an ``xdist_group`` mark naming its unit, meant for ``--dist loadgroup``.
Known limit: with pytest 9.2 and xdist 3.8 the mark has no effect (xdist appends the group to
``item._nodeid``, which pytest 9 no longer reads), so xdist hands out tests one by one and a
module's servers may start in both processes. Every figure in the README and the chapters was
measured that way. A scheduler of our own (``pytest_xdist_make_scheduler``) was tried and taken
back: it needs a green PostgreSQL run first.

xdist hands units out in collection order (``--no-loadscope-reorder``): the longest units go
first, so that no long one starts last while the other process sits idle.

A test that asserts a timing bound is marked ``alone``: it runs while no other test does
(:class:`MachineTurns`), so a busy neighbour can never make it fail.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

#: The scopes whose fixtures a unit's tests share: tests that share such a parameter stay together.
SHARED_SCOPES = frozenset({"module", "package", "session"})

#: Modules whose units take minutes rather than seconds, longest first (from --durations on the
#: 2-core machines): handed out before everything else.
LONGEST_FIRST = (
    "tests/docs/test_runnable_blocks.py",
    "tests/bench/test_bench_smoke.py",
    "tests/phase3/test_faults.py",
    "tests/contract/test_no_server_errors.py",
)


def unit_of(item: pytest.Item) -> str:
    """The module of ``item`` and its values of the parameters of shared fixtures."""
    path = item.nodeid.split("::", 1)[0]
    callspec = getattr(item, "callspec", None)
    if callspec is None or not isinstance(item, pytest.Function):
        return path
    definitions = item._fixtureinfo.name2fixturedefs  # pytest keeps each fixture's scope here
    shared = [
        f"{name}={callspec.indices[name]}"
        for name in sorted(callspec.params)
        if name in definitions and definitions[name][-1].scope in SHARED_SCOPES
    ]
    return "|".join([path, *shared])


def rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)


def group_for_xdist(items: list[pytest.Item]) -> None:
    """Mark each item with its unit (before xdist reads the marks)."""
    for item in items:
        item.add_marker(pytest.mark.xdist_group(unit_of(item)))


def longest_first(items: list[pytest.Item]) -> None:
    """Put the longest units first (after pytest's own ordering, which a stable sort otherwise keeps)."""
    items.sort(key=rank)


# ---------------------------------------------------------------------------------------------
# Tests with a timing bound run alone


class MachineTurns:
    """A readers–writer lock over the xdist processes, made of two ``flock`` files in a shared folder.

    A test marked ``alone`` (it asserts a timing bound, such as "answers within 2 s") must not share
    the 2 cores with another test: it takes the machine (``room``, exclusive) while every other test
    holds it shared, so it starts once the other process's current test has ended, and the other
    process waits until it is done. The ``turnstile`` keeps a waiting ``alone`` test from being
    overtaken forever by the other process's stream of shared turns.
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._turnstile = (folder / "turnstile.lock").open("a")
        self._room = (folder / "room.lock").open("a")

    @contextmanager
    def shared(self) -> Iterator[None]:
        fcntl.flock(self._turnstile, fcntl.LOCK_EX)
        fcntl.flock(self._turnstile, fcntl.LOCK_UN)
        fcntl.flock(self._room, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(self._room, fcntl.LOCK_UN)

    @contextmanager
    def alone(self) -> Iterator[None]:
        fcntl.flock(self._turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._room, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._room, fcntl.LOCK_UN)
        finally:
            fcntl.flock(self._turnstile, fcntl.LOCK_UN)
