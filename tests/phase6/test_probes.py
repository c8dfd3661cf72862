"""The readiness probe Kubernetes calls (``GET /ready/accepting``): no key, and Redis may be down.

Phases 5 and 6 accept a task while Redis is down (the row is stored, the reconciler enqueues it
later), so a Redis outage must not take every API pod out of its Service. The database is what a
submit needs: without it, or before the schema step made the task table, the probe says 503.
``/ready`` keeps its contract (503 when either store is down, behind a key).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from phase6_docker.api import create_app
from phase6_docker.security import ACCEPTING_PATH, PUBLIC_PATHS
from shared.redis_server import free_port
from tests.phase6.conftest import bearer, key_hashes


@pytest.fixture
def client(phase_env: dict[str, str], db_engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[TestClient]:
    """Phase 6's whole app, in process, on the test database and Redis, with the test keys."""
    for name, value in {**phase_env, "API_KEY_HASHES": key_hashes(), "METRICS_DIR": str(tmp_path / "metrics")}.items():
        monkeypatch.setenv(name, value)
    with TestClient(create_app()) as test_client:
        yield test_client


def unreachable_redis() -> redis.Redis:
    """A client of a port nothing listens on: what the API holds while Redis restarts."""
    return redis.Redis(port=free_port(), socket_connect_timeout=0.5, socket_timeout=0.5)


def test_the_probe_needs_no_key_and_reports_both_stores(client: TestClient) -> None:
    assert ACCEPTING_PATH in PUBLIC_PATHS
    response = client.get(ACCEPTING_PATH)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "accepting", "checks": {"database": "ok", "redis": "ok"}}


def test_redis_down_keeps_the_pod_ready_but_says_so(client: TestClient) -> None:
    client.app.state.redis = unreachable_redis()  # type: ignore[attr-defined]
    probe = client.get(ACCEPTING_PATH)
    assert probe.status_code == 200, probe.text
    assert probe.json()["checks"]["database"] == "ok"
    assert probe.json()["checks"]["redis"].startswith("down: ConnectionError")
    # /ready's contract is unchanged: either store down is a 503 naming it (and it still needs a key).
    assert client.get("/ready").status_code == 401
    ready = client.get("/ready", headers=bearer("alice"))
    assert ready.status_code == 503
    assert "redis" in ready.json()["detail"]
    # And the pod really accepts: the row is stored, the reconciler will enqueue it.
    submitted = client.post("/tasks", json={"task_type": "noop", "payload": {}}, headers=bearer("alice"))
    assert submitted.status_code == 202, submitted.text


def test_database_down_makes_the_pod_unready(client: TestClient, tmp_path: Path) -> None:
    client.app.state.engine = create_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'tasks.db'}")  # type: ignore[attr-defined]
    response = client.get(ACCEPTING_PATH)
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "down: OperationalError"
    assert response.json()["checks"]["redis"] == "ok"


def test_a_database_without_the_task_table_is_not_ready_yet(client: TestClient, tmp_path: Path) -> None:
    """Before the schema Job ran, the database answers but a submit would fail: not ready."""
    client.app.state.engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # type: ignore[attr-defined]
    response = client.get(ACCEPTING_PATH)
    assert response.status_code == 503
    assert "task table" in response.json()["detail"]
