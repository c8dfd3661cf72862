"""The phase under test, running for real: every module of the contract suite serves it the same way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from tasklab_cli.processes import PHASES, start_api, start_worker
from tests.support import ServedPhase


@pytest.fixture(scope="module", params=sorted(PHASES), ids=lambda n: f"phase{n}")
def served(request: pytest.FixtureRequest, phase_env: dict[str, str], db_engine: Engine) -> Iterator[ServedPhase]:
    """The phase under test, running: its API and, where it has one, one worker."""
    phase = PHASES[request.param]
    api = start_api(phase, phase_env)
    worker = start_worker(phase, phase_env) if phase.has_worker else None
    yield ServedPhase(phase, api.base_url)
    if worker is not None:
        worker.stop()
    api.stop()
