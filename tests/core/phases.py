"""Each phase's package, for the tests parametrized over the phases' own copies of a module."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

#: Phase number → its package; a test id ``phaseN`` lets ``make test PHASE=N`` select it.
PACKAGES: dict[int, str] = {
    1: "phase1_basic",
    2: "phase2_queue",
    3: "phase3_retry",
    4: "phase4_monitoring",
    5: "phase5_scaling",
    6: "phase6_docker",
}


def phase_params(first: int = 1, last: int = 6) -> list[pytest.ParameterSet]:
    """One parameter per phase from ``first`` to ``last``, with the id ``phaseN``."""
    return [pytest.param(number, id=f"phase{number}") for number in PACKAGES if first <= number <= last]


def phase_module(number: int, name: str) -> ModuleType:
    """``phaseN_*.<name>``: that phase's own copy of the module."""
    return importlib.import_module(f"{PACKAGES[number]}.{name}")
