"""The HTTP contract of ../shared/DESIGN.md, checked against every phase's real server.

Each phase runs as a real ``uvicorn`` process (with its worker, from phase 2 on), and the
tests talk to it with httpx, a client that is not tasklab's own code. A phase serves the
contract when every test here passes for it, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy.engine import Engine

from shared.models import TASK_TYPES
from tasklab_cli.processes import PHASES, Phase, start_api, start_worker
from tests.support import EXPECTED_RESULTS, submit, wait_for_status

ONE_MEBIBYTE = 1024 * 1024


@dataclass(frozen=True)
class ServedPhase:
    phase: Phase
    base_url: str


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


@pytest.fixture
def client(served: ServedPhase, empty_store: Engine) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.base_url, timeout=10.0) as http:
        yield http


# ---------------------------------------------------------------------------------------------
# POST /tasks


def test_submit_returns_202_with_the_task_and_its_location(client: httpx.Client) -> None:
    response = client.post("/tasks", json={"task_type": "fibonacci", "payload": {"n": 10}, "priority": 4})

    assert response.status_code == 202
    task = response.json()
    assert response.headers["location"] == f"/tasks/{task['id']}"
    assert uuid.UUID(task["id"])
    assert task["task_type"] == "fibonacci"
    assert task["payload"] == {"n": 10}
    assert task["priority"] == 4
    assert task["status"] in ("pending", "running", "completed")
    assert task["created_at"].endswith("Z") or task["created_at"].endswith("+00:00")


def test_priority_defaults_to_3_and_payload_defaults_are_filled_in(client: httpx.Client) -> None:
    task = submit(client, "compute")

    assert task["priority"] == 3
    assert task["payload"] == {"n": 1_000_000}


def test_submitted_task_runs_to_completion(client: httpx.Client) -> None:
    task = submit(client, "fibonacci", {"n": 10})

    done = wait_for_status(client, task["id"])

    assert done["status"] == "completed"
    assert done["result"] == 55
    assert done["attempts"] == 1
    assert done["started_at"] is not None and done["completed_at"] is not None


@pytest.mark.parametrize("task_type", sorted(EXPECTED_RESULTS))
def test_every_task_type_ends_completed_with_its_result(client: httpx.Client, task_type: str) -> None:
    payload, expected = EXPECTED_RESULTS[task_type]
    task = submit(client, task_type, payload)

    done = wait_for_status(client, task["id"])

    assert (done["status"], done["result"], done["error"]) == ("completed", expected, None)
    assert done["progress"] == 100


def test_a_failing_task_ends_failed_with_its_error(client: httpx.Client) -> None:
    task = submit(client, "flaky", {"fail_times": 1, "permanent": True})

    done = wait_for_status(client, task["id"])

    assert done["status"] == "failed"
    assert done["attempts"] == 1
    assert "PermanentTaskError: flaky: attempt 1 fails on purpose" in done["error"]
    assert done["result"] is None and done["completed_at"] is not None


def test_unknown_task_type_is_422_naming_every_valid_type(client: httpx.Client) -> None:
    response = client.post("/tasks", json={"task_type": "mine_bitcoin", "payload": {}})

    assert response.status_code == 422
    message = json.dumps(response.json()["detail"])
    for task_type in TASK_TYPES:
        assert task_type in message


@pytest.mark.parametrize("priority", [0, 6, -1, "high", 2.5])
def test_priority_outside_1_to_5_is_422(client: httpx.Client, priority: object) -> None:
    response = client.post("/tasks", json={"task_type": "noop", "payload": {}, "priority": priority})

    assert response.status_code == 422
    assert "priority" in json.dumps(response.json()["detail"])


@pytest.mark.parametrize("payload", ["n=10", [10], 10, None])
def test_payload_that_is_not_an_object_is_422(client: httpx.Client, payload: object) -> None:
    response = client.post("/tasks", json={"task_type": "fibonacci", "payload": payload})

    assert response.status_code == 422
    assert "payload" in json.dumps(response.json()["detail"])


def test_payload_field_of_the_wrong_type_is_422_naming_the_field(client: httpx.Client) -> None:
    response = client.post("/tasks", json={"task_type": "fibonacci", "payload": {"n": "ten"}})

    assert response.status_code == 422
    message = json.dumps(response.json()["detail"])
    assert "fibonacci" in message and "n:" in message


def test_payload_with_an_unknown_field_is_422(client: httpx.Client) -> None:
    response = client.post("/tasks", json={"task_type": "fibonacci", "payload": {"n": 3, "m": 4}})

    assert response.status_code == 422
    assert "m:" in json.dumps(response.json()["detail"])


def test_missing_task_type_is_422(client: httpx.Client) -> None:
    response = client.post("/tasks", json={"payload": {}})

    assert response.status_code == 422
    assert "task_type" in json.dumps(response.json()["detail"])


def test_malformed_json_is_422(client: httpx.Client) -> None:
    response = client.post("/tasks", content=b'{"task_type": ', headers={"content-type": "application/json"})

    assert response.status_code == 422


def test_body_over_1_mib_is_413(client: httpx.Client) -> None:
    body = json.dumps({"task_type": "text_processing", "payload": {"text": "a" * ONE_MEBIBYTE}})

    response = client.post("/tasks", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 413
    assert "1048576" in response.json()["detail"]


def test_chunked_body_over_1_mib_is_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        # No Content-Length: the server has to count the bytes as they arrive.
        yield b'{"task_type": "text_processing", "payload": {"text": "'
        for _ in range(20):
            yield b"a" * 64 * 1024
        yield b'"}}'

    response = client.post("/tasks", content=chunks(), headers={"content-type": "application/json"})

    assert response.status_code == 413


def test_large_body_under_the_limit_is_accepted(client: httpx.Client) -> None:
    text = "Queues decouple producers from consumers. " * 4_000  # ~170 KB

    task = submit(client, "ai_summarization", {"text": text})

    assert task["status"] in ("pending", "running", "completed")


def test_rejected_requests_store_nothing(client: httpx.Client) -> None:
    client.post("/tasks", json={"task_type": "mine_bitcoin", "payload": {}})
    client.post("/tasks", json={"task_type": "fibonacci", "payload": {"n": -1}})

    assert client.get("/tasks").json()["total"] == 0


# ---------------------------------------------------------------------------------------------
# GET /tasks/{id}


def test_get_returns_the_task(client: httpx.Client) -> None:
    task = submit(client, "noop")

    response = client.get(f"/tasks/{task['id']}")

    assert response.status_code == 200
    assert response.json()["id"] == task["id"]


def test_get_unknown_id_is_404_naming_it(client: httpx.Client) -> None:
    missing = uuid.uuid4()

    response = client.get(f"/tasks/{missing}")

    assert response.status_code == 404
    assert str(missing) in response.json()["detail"]


def test_get_malformed_id_is_422(client: httpx.Client) -> None:
    response = client.get("/tasks/not-a-uuid")

    assert response.status_code == 422


# ---------------------------------------------------------------------------------------------
# GET /tasks


def test_list_is_newest_first_with_total_limit_and_offset(client: httpx.Client) -> None:
    ids = [submit(client, "noop")["id"] for _ in range(5)]

    page = client.get("/tasks", params={"limit": 2, "offset": 1}).json()

    assert page["total"] == 5
    assert page["limit"] == 2 and page["offset"] == 1
    assert [t["id"] for t in page["items"]] == [ids[3], ids[2]]


def test_pages_do_not_overlap_and_cover_everything(client: httpx.Client) -> None:
    ids = {submit(client, "noop")["id"] for _ in range(7)}

    seen: list[str] = []
    for offset in range(0, 7, 3):
        seen += [t["id"] for t in client.get("/tasks", params={"limit": 3, "offset": offset}).json()["items"]]

    assert sorted(seen) == sorted(ids)


def test_limit_above_100_is_capped_at_100(client: httpx.Client) -> None:
    page = client.get("/tasks", params={"limit": 1000}).json()

    assert page["limit"] == 100


def test_filter_by_task_type(client: httpx.Client) -> None:
    submit(client, "noop")
    fib = submit(client, "fibonacci", {"n": 3})

    page = client.get("/tasks", params={"task_type": "fibonacci"}).json()

    assert page["total"] == 1
    assert page["items"][0]["id"] == fib["id"]


def test_filter_by_status(client: httpx.Client) -> None:
    done = submit(client, "noop")
    wait_for_status(client, done["id"], ["completed"])

    completed = client.get("/tasks", params={"status": "completed"}).json()
    failed = client.get("/tasks", params={"status": "failed"}).json()

    assert done["id"] in [t["id"] for t in completed["items"]]
    assert failed["total"] == 0


@pytest.mark.parametrize(
    "params",
    [{"status": "sleeping"}, {"task_type": "mine_bitcoin"}, {"limit": 0}, {"limit": "ten"}, {"offset": -1}],
    ids=["bad-status", "bad-type", "zero-limit", "text-limit", "negative-offset"],
)
def test_bad_list_filter_is_422(client: httpx.Client, params: dict[str, object]) -> None:
    response = client.get("/tasks", params=params)

    assert response.status_code == 422
    assert "detail" in response.json()


# ---------------------------------------------------------------------------------------------
# Health, readiness, the API description


def test_health_is_200(client: httpx.Client) -> None:
    assert client.get("/health").status_code == 200


def test_ready_is_200_when_database_and_redis_answer(client: httpx.Client, served: ServedPhase) -> None:
    if served.phase.number < 2:
        pytest.skip("readiness (database and Redis) starts with phase 2")

    response = client.get("/ready")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


def test_openapi_documents_the_errors_and_examples(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/tasks"]["post"]

    assert {"202", "413", "422", "503"} <= set(post["responses"])
    assert spec["components"]["schemas"]["TaskCreate"].get("examples")
    assert "404" in spec["paths"]["/tasks/{task_id}"]["get"]["responses"]
