"""The HTTP contract of README.md ("The HTTP contract"), checked against every phase's real server.

Each phase runs as a real ``uvicorn`` process, with its worker from phase 2 on (the ``served``
fixture, in ``conftest.py``), and the tests talk to it with httpx, a client that is not
tasklab's own code. A phase serves the contract when every test here passes for it, on SQLite
and on PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.engine import Engine

from shared.models import TASK_TYPES
from tests.support import EXPECTED_RESULTS, ServedPhase, submit, wait_for_status

ONE_MEBIBYTE = 1024 * 1024


@pytest.fixture
def client(served: ServedPhase, empty_store: Engine) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.base_url, headers=served.headers, timeout=10.0) as http:
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


@pytest.mark.parametrize(
    "body",
    [
        b'{"task_type": "noop", "payload": {}, "priority": NaN}',
        b'{"task_type": "batch_processing", "payload": {"items": [1, Infinity]}}',
        b'{"task_type": "image_processing", "payload": {"width": 10, "height": 10, "scale": NaN}}',
    ],
    ids=["nan-priority", "infinite-item", "nan-scale"],
)
def test_nan_or_infinity_in_the_body_is_422(client: httpx.Client, body: bytes) -> None:
    """Not JSON, but Python's parser accepts them: refused, and the 422 can still echo them."""
    response = client.post("/tasks", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 422
    assert "finite number" in json.dumps(response.json()["detail"])


def test_batch_number_too_large_to_add_up_is_422(client: httpx.Client) -> None:
    response = client.post("/tasks", json={"task_type": "batch_processing", "payload": {"items": [1, 10**400]}})

    assert response.status_code == 422
    assert "items[1]" in json.dumps(response.json()["detail"])


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
def test_bad_list_filter_is_422(client: httpx.Client, params: dict[str, str | int]) -> None:
    response = client.get("/tasks", params=params)

    assert response.status_code == 422
    assert "detail" in response.json()


@pytest.mark.parametrize("offset", [10_001, 13370101836050147328], ids=["just-above", "overflows-int64"])
def test_offset_above_the_bound_is_422_naming_offset(client: httpx.Client, offset: int) -> None:
    """The fuzzer's find: an offset that overflowed the database's integer was a 500."""
    response = client.get("/tasks", params={"task_type": "image_processing", "offset": offset})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "offset"]


def test_small_totals_are_exact(client: httpx.Client) -> None:
    submit(client, "noop")

    page = client.get("/tasks").json()

    assert (page["total"], page["total_is_exact"]) == (1, True)


# ---------------------------------------------------------------------------------------------
# GET /tasks?cursor=: keyset pagination


def read_all_pages(client: httpx.Client, limit: int, **filters: str) -> list[list[str]]:
    """Follow next_cursor from the first page to the last; the ids of each page."""
    pages: list[list[str]] = []
    params: dict[str, str | int] = {"limit": limit, **filters}
    while True:
        page = client.get("/tasks", params=params).json()
        pages.append([t["id"] for t in page["items"]])
        if page["next_cursor"] is None:
            return pages
        params = {"limit": limit, **filters, "cursor": page["next_cursor"]}


def test_cursor_pages_are_newest_first_without_overlap_and_cover_everything(client: httpx.Client) -> None:
    ids = [submit(client, "noop")["id"] for _ in range(7)]

    pages = read_all_pages(client, limit=3)

    assert [len(page) for page in pages] == [3, 3, 1]
    assert [task_id for page in pages for task_id in page] == ids[::-1]


def test_a_page_that_fills_exactly_has_no_next_cursor(client: httpx.Client) -> None:
    for _ in range(3):
        submit(client, "noop")

    page = client.get("/tasks", params={"limit": 3}).json()

    assert len(page["items"]) == 3 and page["next_cursor"] is None


def test_cursor_pages_are_stable_when_tasks_are_added_between_them(client: httpx.Client) -> None:
    ids = [submit(client, "noop")["id"] for _ in range(6)]
    first = client.get("/tasks", params={"limit": 3}).json()

    for _ in range(2):
        submit(client, "noop")  # newer: they belong before the first page, not in the next
    second = client.get("/tasks", params={"limit": 3, "cursor": first["next_cursor"]}).json()

    assert [t["id"] for t in first["items"]] == ids[5:2:-1]
    assert [t["id"] for t in second["items"]] == ids[2::-1]
    assert second["next_cursor"] is None


def test_cursor_pages_keep_to_the_filters(client: httpx.Client) -> None:
    fibonacci = []
    for n in range(4):
        fibonacci.append(submit(client, "fibonacci", {"n": n})["id"])
        submit(client, "noop")

    pages = read_all_pages(client, limit=3, task_type="fibonacci")

    assert [task_id for page in pages for task_id in page] == fibonacci[::-1]


@pytest.mark.parametrize(
    "cursor",
    ["not a cursor", "bm90IGEgY3Vyc29y", "", "x" * 201],
    ids=["not-base64", "base64-of-junk", "empty", "too-long"],
)
def test_malformed_cursor_is_422_naming_cursor(client: httpx.Client, cursor: str) -> None:
    response = client.get("/tasks", params={"cursor": cursor})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_cursor_together_with_offset_is_422(client: httpx.Client) -> None:
    for _ in range(3):
        submit(client, "noop")
    cursor = client.get("/tasks", params={"limit": 1}).json()["next_cursor"]

    response = client.get("/tasks", params={"cursor": cursor, "offset": 1})

    assert response.status_code == 422
    assert "cursor or offset" in json.dumps(response.json()["detail"])


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
