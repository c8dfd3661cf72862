"""The phase under test, running for real: every module of the contract suite serves it the same way.

Phases 1 to 5 in every run; phase 6 (the same HTTP contract behind API keys and a rate limit)
in the slow set CI runs, with a key on every request.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from tasklab_cli.processes import PHASES, start_api, start_worker
from tests.support import PHASE6, SUITE_RATE_LIMIT, ServedPhase, bearer, key_hashes

#: Every phase the contract holds for: phase 6's instances in the slow set (its own tests cover
#: what it adds in every run; this is the same contract again, behind its keys).
CONTRACT_PHASES = [pytest.param(n, id=f"phase{n}") for n in sorted(PHASES)] + [
    pytest.param(6, id="phase6", marks=[pytest.mark.slow, pytest.mark.on_deployed_database])
]


@pytest.fixture(scope="module", params=CONTRACT_PHASES)
def served(
    request: pytest.FixtureRequest, phase_env: dict[str, str], db_engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedPhase]:
    """The phase under test, running: its API and, where it has one, one worker (phase 6: a pool of one)."""
    if request.param == 6:
        phase = PHASE6
        env = {
            **phase_env,
            "API_KEY_HASHES": key_hashes(),
            "RATE_LIMIT_REQUESTS": SUITE_RATE_LIMIT,
            "METRICS_DIR": str(tmp_path_factory.mktemp("metrics")),
        }
        worker_args: tuple[str, ...] = ("--processes", "1")
        headers = bearer("alice")
    else:
        phase, env, worker_args, headers = PHASES[request.param], phase_env, (), {}
    api = start_api(phase, env)
    worker = start_worker(phase, env, *worker_args) if phase.has_worker else None
    yield ServedPhase(phase, api.base_url, headers)
    if worker is not None:
        worker.stop()
    api.stop()
