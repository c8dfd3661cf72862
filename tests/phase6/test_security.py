"""API keys and the per-key rate limit, in front of a small FastAPI app, against a real Redis.

The layer is plain ASGI (:mod:`phase6_docker.security`): these tests need no Docker, no
database and no worker, only the session's private ``redis-server`` for the limit.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from phase6_docker.security import MAX_HEADER_BYTES, MAX_KEY_LENGTH, ApiKeys, add_security, hash_key
from phase6_docker.settings import Phase6Settings
from tests.phase6.conftest import KEYS, bearer, key_hashes

LIMIT = 3


def small_app() -> FastAPI:
    """The routes the layer must tell apart: public, protected, and the limited submit."""
    app = FastAPI()

    @app.get("/health")
    def read_health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/stats")
    def read_stats() -> dict[str, int]:
        return {"tasks": 0}

    @app.post("/tasks", status_code=202)
    def create_task() -> dict[str, str]:
        return {"status": "pending"}

    return app


@pytest.fixture
def client(redis_url: str, flushed_redis: redis.Redis) -> Iterator[TestClient]:
    settings = Phase6Settings(
        api_key_hashes=key_hashes(), redis_url=redis_url, rate_limit_requests=LIMIT, rate_limit_period_seconds=60
    )
    with TestClient(add_security(small_app(), load=lambda: settings)) as http:
        yield http


def test_health_is_public(client: TestClient) -> None:
    assert client.get("/health").status_code == 200


def test_a_request_without_a_key_gets_401_with_a_bearer_challenge(client: TestClient) -> None:
    response = client.get("/stats")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="tasklab"'
    assert "API key is required" in response.json()["detail"]


def test_a_wrong_key_gets_401_invalid_token(client: TestClient) -> None:
    response = client.get("/stats", headers={"Authorization": "Bearer not-a-key"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert response.json() == {"detail": "API key not recognised"}


@pytest.mark.parametrize("headers", [bearer("alice"), {"X-API-Key": KEYS["bob"]}, {"authorization": f"bearer {KEYS['alice']}"}])
def test_a_valid_key_is_accepted_as_bearer_or_x_api_key(client: TestClient, headers: dict[str, str]) -> None:
    assert client.get("/stats", headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Authorization": f"Basic {KEYS['alice']}"}, "Bearer scheme"),
        ({"Authorization": "Bearer "}, "malformed"),
        ({"X-API-Key": "k" * (MAX_KEY_LENGTH + 1)}, "too long"),
        ({"Authorization": "Bearer " + "k" * 10_000}, "too long"),
        ({"X-API-Key": "café-key".encode()}, "malformed"),  # raw UTF-8 bytes on the wire
        ({"X-API-Key": "tab\tinside"}, "malformed"),
    ],
)
def test_malformed_credentials_get_a_401_that_says_why(client: TestClient, headers: dict[str, str | bytes], message: str) -> None:
    response = client.get("/stats", headers=headers)
    assert response.status_code == 401
    assert message in response.json()["detail"]


def test_oversized_headers_get_431_even_on_public_routes(client: TestClient) -> None:
    response = client.get("/health", headers={"X-Padding": "p" * (MAX_HEADER_BYTES + 1)})
    assert response.status_code == 431
    assert "request headers too large" in response.json()["detail"]


def test_the_limit_answers_429_with_retry_after_and_ratelimit_headers(client: TestClient) -> None:
    remaining = [client.post("/tasks", headers=bearer("alice")).headers["RateLimit-Remaining"] for _ in range(LIMIT)]
    assert remaining == ["2", "1", "0"]

    refused = client.post("/tasks", headers=bearer("alice"))
    assert refused.status_code == 429
    assert "rate limit of 3 task submissions per 60 s" in refused.json()["detail"]
    # One slot comes back every 60 / 3 = 20 s: that is the wait the client is told.
    assert 19 <= int(refused.headers["Retry-After"]) <= 20
    assert refused.headers["RateLimit-Limit"] == "3"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert 0 < int(refused.headers["RateLimit-Reset"]) <= 60


def test_the_limit_is_per_key(client: TestClient) -> None:
    for _ in range(LIMIT):
        client.post("/tasks", headers=bearer("alice"))
    assert client.post("/tasks", headers=bearer("alice")).status_code == 429
    assert client.post("/tasks", headers=bearer("bob")).status_code == 202


def test_only_submits_are_limited(client: TestClient) -> None:
    for _ in range(LIMIT + 1):
        client.post("/tasks", headers=bearer("alice"))
    assert client.get("/stats", headers=bearer("alice")).status_code == 200


def test_a_refused_key_never_consumes_the_limit(client: TestClient) -> None:
    """Unknown keys are refused before the limiter: nobody can spend somebody else's budget."""
    for _ in range(LIMIT + 2):
        assert client.post("/tasks", headers={"X-API-Key": "guess"}).status_code == 401
    assert client.post("/tasks", headers=bearer("alice")).headers["RateLimit-Remaining"] == "2"


def test_with_redis_unreachable_submits_are_allowed_not_500(flushed_redis: redis.Redis) -> None:
    """Fail open: the store still takes the task; refusing all submits would turn a blip into an outage."""
    settings = Phase6Settings(api_key_hashes=key_hashes(), redis_url="redis://127.0.0.1:1/0", redis_timeout_seconds=0.2)
    with TestClient(add_security(small_app(), load=lambda: settings)) as http:
        response = http.post("/tasks", headers=bearer("alice"))
    assert response.status_code == 202
    assert "RateLimit-Remaining" not in response.headers


def test_an_app_without_keys_refuses_to_start(redis_url: str) -> None:
    settings = Phase6Settings(api_key_hashes="", redis_url=redis_url)
    with (
        pytest.raises(RuntimeError, match="API_KEY_HASHES is empty"),
        TestClient(add_security(small_app(), load=lambda: settings)),
    ):
        pass


@pytest.mark.parametrize("entry", ["alice", "alice:1234", f"bad name:{'a' * 64}", f"a:{'a' * 64},a:{'b' * 64}"])
def test_malformed_key_hashes_are_refused_at_start(entry: str) -> None:
    with pytest.raises(ValidationError, match="API_KEY_HASHES"):
        Phase6Settings(api_key_hashes=entry)


def test_keys_are_stored_as_digests_and_matched_by_name() -> None:
    keys = ApiKeys({"alice": hash_key(KEYS["alice"]), "bob": hash_key(KEYS["bob"])})
    assert keys.identify(KEYS["bob"]) == "bob"
    assert keys.identify(hash_key(KEYS["bob"])) is None  # the stored digest is not itself a key
    assert keys.identify("") is None
