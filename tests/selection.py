"""Which phase a test runs against, so that ``make test PHASE=N`` (``pytest --phase N``) runs exactly those.

A test runs against phase N when

* it is parametrized over phases and this instance is phase N's (its id says ``phaseN``): the
  contract suite on every phase, phase 3's recovery tests on phases 3 to 6, phase 4's
  monitoring tests on phases 4 to 6;
* otherwise, when it lives in ``tests/phaseN/``;
* or when it tests ``shared/`` (``tests/shared/``), which every phase runs on. (``tests/core/`` is
  parametrized over the phases' own copies of the core: its ids name the phase.)

Everything else tests the tools around the phases (``tests/docs``, ``tests/bench``,
``tests/cli``): ``make test-tools`` (``pytest --phase tools``) runs those.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

#: The phases ``--phase`` accepts, and the word for the tests of the tools that belong to none.
PHASE_NUMBERS = (1, 2, 3, 4, 5, 6)
TOOLS = "tools"
CHOICES = [str(number) for number in PHASE_NUMBERS] + [TOOLS]

TESTS_ROOT = Path(__file__).resolve().parent
PHASE_IN_ID = re.compile(r"(?:^|[-\[])phase(\d)(?=$|[-\]])")
PHASE_FOLDER = re.compile(r"^phase(\d)$")


def phases_of(item: pytest.Item) -> set[int] | None:
    """The phases ``item`` runs against; ``None`` for a test of the tools around them."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        in_id = {int(number) for number in PHASE_IN_ID.findall(callspec.id)}
        if in_id:
            return in_id
    folder = item.path.relative_to(TESTS_ROOT).parts[0]
    if match := PHASE_FOLDER.match(folder):
        return {int(match.group(1))}
    if folder == "shared":
        return set(PHASE_NUMBERS)
    return None


def selected(item: pytest.Item, choice: str) -> bool:
    phases = phases_of(item)
    if choice == TOOLS:
        return phases is None
    return phases is not None and int(choice) in phases


def deselect(config: pytest.Config, items: list[pytest.Item], choice: str | None) -> None:
    """Keep only the items of ``choice`` (a phase number or ``tools``); report the others as deselected."""
    if not choice:
        return
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        (kept if selected(item, choice) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept


def on_another_database(item: pytest.Item, postgres: bool) -> bool:
    """Whether ``item`` is a repeat on phase 6 (marked ``on_deployed_database``) given a SQLite
    instance while the run has PostgreSQL, the database phase 6 deploys with (Compose, Kubernetes).

    Phase 6's own tests run on both databases; the earlier phases' suites it repeats prove that
    the keys and the rate limit changed nothing, and one database proves that.
    """
    callspec = getattr(item, "callspec", None)
    return bool(
        postgres
        and item.get_closest_marker("on_deployed_database")
        and callspec is not None
        and callspec.params.get("backend") == "sqlite"
    )


def deselect_repeats(config: pytest.Config, items: list[pytest.Item], postgres: bool) -> None:
    """Drop the SQLite instances of phase 6's repeats when PostgreSQL is there (see above)."""
    dropped = [item for item in items if on_another_database(item, postgres)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not on_another_database(item, postgres)]
