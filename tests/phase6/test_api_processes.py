"""The phase 6 API as it runs: real uvicorn processes, a real database and Redis.

Two API processes are what ``uvicorn --workers 2`` (or two replicas) would be: the rate
limit must hold across them, because it lives in Redis, not in a process.
"""

from __future__ import annotations

import itertools

import httpx
import pytest
import redis

from tasklab_cli.processes import ApiProcess
from tests.phase6.conftest import KEYS, ApiFactory, bearer

NOOP = {"task_type": "noop", "payload": {}}


@pytest.mark.usefixtures("flushed_redis")
def test_two_api_processes_share_one_limit(phase6_apis: ApiFactory) -> None:
    """Given a limit of 4 per minute, submits spread over two processes get 4 accepted in all, then 429 from both."""
    servers = [phase6_apis(RATE_LIMIT_REQUESTS="4"), phase6_apis(RATE_LIMIT_REQUESTS="4")]
    clients = [httpx.Client(base_url=server.base_url, timeout=10) for server in servers]
    try:
        answers = [
            client.post("/tasks", json=NOOP, headers=bearer("alice")) for client in itertools.islice(itertools.cycle(clients), 6)
        ]
        assert [r.status_code for r in answers] == [202, 202, 202, 202, 429, 429]
        assert [r.headers["RateLimit-Remaining"] for r in answers] == ["3", "2", "1", "0", "0", "0"]
        assert all(int(r.headers["Retry-After"]) >= 1 for r in answers[4:])
        # Another key has its own budget, on either process.
        assert clients[1].post("/tasks", json=NOOP, headers={"X-API-Key": KEYS["bob"]}).status_code == 202
    finally:
        for client in clients:
            client.close()


@pytest.fixture(scope="module")
def api(phase6_api_module: ApiFactory) -> ApiProcess:
    """One phase 6 server for the tests that need only one (the default limit: 600 a minute)."""
    return phase6_api_module()


@pytest.mark.usefixtures("flushed_redis")
@pytest.mark.parametrize("path", ["/metrics", "/stats", "/dashboard", "/ready", "/tasks"])
def test_operator_routes_need_a_key(api: ApiProcess, path: str) -> None:
    with httpx.Client(base_url=api.base_url, timeout=10) as client:
        refused = client.get(path)
        assert refused.status_code == 401, refused.text
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert refused.headers["X-Request-ID"]  # the refusal is logged and counted like any request
        assert client.get(path, headers=bearer("bob")).status_code == 200


@pytest.mark.usefixtures("flushed_redis")
def test_health_and_docs_stay_public(api: ApiProcess) -> None:
    with httpx.Client(base_url=api.base_url, timeout=10) as client:
        assert client.get("/health").status_code == 200
        schema = client.get("/openapi.json")
        assert schema.status_code == 200
        assert set(schema.json()["components"]["securitySchemes"]) == {"bearer", "apiKey"}


@pytest.mark.usefixtures("flushed_redis")
@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer " + "k" * 60_000},
        {"X-API-Key": "k" * 60_000},
        {"X-Padding": "p" * 200_000, **bearer("alice")},
        {b"X-API-Key": b"\xff\xfe-bytes"},
    ],
    ids=["huge-bearer", "huge-x-api-key", "huge-other-header", "binary-key"],
)
def test_bad_or_oversized_headers_get_4xx_never_5xx(api: ApiProcess, headers: dict[str, str] | dict[bytes, bytes]) -> None:
    try:
        response = httpx.post(f"{api.base_url}/tasks", json=NOOP, headers=headers, timeout=10)
    except httpx.RemoteProtocolError:
        pytest.fail("the server dropped the connection instead of answering 4xx")
    assert response.status_code in (401, 431), response.text
    assert response.json()["detail"]  # a message that says what was wrong
    assert api.alive()


def test_a_refused_key_leaves_no_bucket_in_redis(api: ApiProcess, flushed_redis: redis.Redis) -> None:
    httpx.post(f"{api.base_url}/tasks", json=NOOP, headers={"X-API-Key": "guess"}, timeout=10)
    assert flushed_redis.keys("phase6:ratelimit:*") == []
