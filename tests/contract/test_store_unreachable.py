"""The contract's 503: a task store that does not answer is an outage, not a server bug (500).

The app is run in-process here (``TestClient`` is httpx underneath) with its database pointed
at a SQLite file that cannot be opened: a real driver failing for real, no mock. Skipping the
lifespan is what lets us hand the app that engine, which is also why settings and engines are
built in the lifespan and never at import time.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from phase5_scaling.db import create_db_engine
from shared.settings import Settings
from tasklab_cli.processes import PHASES

UNOPENABLE_DATABASE = "sqlite:////nonexistent-directory/tasks.db"


@pytest.fixture(params=sorted(PHASES), ids=lambda n: f"phase{n}")
def client_with_store_down(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    app = importlib.import_module(f"{PHASES[request.param].package}.api").create_app()
    app.state.settings = Settings(database_url=UNOPENABLE_DATABASE)
    app.state.engine = create_db_engine(UNOPENABLE_DATABASE)
    # Deliberately not `with TestClient(app)`: that would run the lifespan and fail to start.
    yield TestClient(app, raise_server_exceptions=False)
    app.state.engine.dispose()


def test_list_is_503_when_the_store_is_unreachable(client_with_store_down: TestClient) -> None:
    response = client_with_store_down.get("/tasks")

    assert response.status_code == 503
    assert response.json() == {"detail": "task store unreachable: OperationalError"}


def test_submit_is_503_when_the_store_is_unreachable(client_with_store_down: TestClient) -> None:
    response = client_with_store_down.post("/tasks", json={"task_type": "noop", "payload": {}})

    assert response.status_code == 503
    assert "task store unreachable" in response.json()["detail"]
