"""How ``make test`` splits the suite between its pytest-xdist processes.

Most modules start real servers in module-scoped fixtures (a phase's API, its workers, a browser).
Split a module's tests across processes and each process starts those servers again; keep a whole
module in one process and the biggest module decides the wall time. So the unit of work is a
module *and* the phase and database it runs against (the parameters of the module- and
session-scoped fixtures, which every test id of this suite spells ``phaseN`` and ``sqlite`` or
``postgresql``): the contract suite on phase 3 with SQLite is one unit, on phase 4 with PostgreSQL
another, and each can go to either process. :func:`unit_scheduling` is xdist's scope scheduler
with that unit. (xdist's own ``--dist loadgroup`` marks cannot do it here: with pytest 9 the group
it appends to a test's id is lost, and every test becomes a unit of its own.)

xdist hands units out in collection order (``--no-loadscope-reorder``): the longest units go
first, so that no long one starts last while the other process sits idle.

A test that asserts a timing bound is marked ``alone``: it runs while no other test does
(:class:`MachineTurns`), so a busy neighbour can never make it fail.
"""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

#: The words of a test id that name what its shared fixtures were set up for.
SHARED_PARAMETER = re.compile(r"^(?:phase\d|sqlite|postgresql)$")

#: Modules whose units take minutes rather than seconds, longest first (from --durations on the
#: 2-core machines): handed out before everything else.
LONGEST_FIRST = (
    "tests/docs/test_runnable_blocks.py",
    "tests/bench/test_bench_smoke.py",
    "tests/phase3/test_faults.py",
    "tests/contract/test_no_server_errors.py",
)


def unit_of(nodeid: str) -> str:
    """``tests/contract/test_contract.py[sqlite-phase3]`` for every contract test on phase 3 with SQLite."""
    path, _, rest = nodeid.partition("::")
    parameters = rest[rest.index("[") + 1 : -1].split("-") if rest.endswith("]") and "[" in rest else []
    shared = [word for word in parameters if SHARED_PARAMETER.match(word)]
    return f"{path}[{'-'.join(shared)}]" if shared else path


def unit_scheduling(config: pytest.Config, log: object) -> object:
    """xdist's scope scheduling, a scope being :func:`unit_of` a test (xdist is imported only where it runs)."""
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]  # no type hints

    class UnitScheduling(LoadScopeScheduling):  # type: ignore[misc]  # an untyped base
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    return UnitScheduling(config, log)


def rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)


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
