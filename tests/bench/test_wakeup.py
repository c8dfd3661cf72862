"""The machine table's wake-up figure: a real pipe round trip between two real processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.machine import machine_facts
from bench.wakeup import round_trip_microseconds

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the measurement forks an echo process")


@pytest.mark.parametrize("one_core", [False, True], ids=["any-core", "one-core"])
def test_a_round_trip_is_measured_in_microseconds(one_core: bool) -> None:
    """Positive and below a second: a byte went to the child and came back every round."""
    assert 0 < (round_trip_microseconds(one_core=one_core, rounds=200) or 0) < 1_000_000


def test_pinning_to_one_core_gives_the_process_its_cores_back() -> None:
    """The benchmark runs its servers after the measurement: they must keep every core."""
    before = os.sched_getaffinity(0)
    round_trip_microseconds(one_core=True, rounds=50)
    assert os.sched_getaffinity(0) == before


def test_the_machine_table_prints_both_round_trips(tmp_path: Path) -> None:
    fact = machine_facts(None, tmp_path)["process wake-up"]
    assert "any core" in fact and "on one core" in fact
