"""``phase6_docker.verify`` against a real (Docker-less) phase 6 stack, and the patient start.

The stack: the phase 6 API (uvicorn) and worker pool as processes, the session's Redis and the
test database. ``make compose-test`` runs the same verify against the Compose stack.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis

from shared.redis_server import PrivateRedis, free_port
from tasklab_cli.processes import ApiProcess, ManagedProcess, start_worker
from tests.phase6.conftest import KEYS, PHASE6, ApiFactory


def verify(api: ApiProcess, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "phase6_docker.verify", "--url", api.base_url, "--api-key", KEYS["alice"], *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.fixture
def pool(
    phase_env: dict[str, str], flushed_redis: redis.Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManagedProcess]:
    env = {**phase_env, "METRICS_DIR": str(tmp_path_factory.mktemp("pool-metrics"))}
    worker = start_worker(PHASE6, env, "--processes", "2", "--grace-seconds", "2")
    yield worker
    worker.stop()


def test_verify_passes_against_a_working_stack(phase6_apis: ApiFactory, pool: ManagedProcess) -> None:
    api = phase6_apis(RATE_LIMIT_REQUESTS="30")  # verify's own 24 submits count too
    result = verify(api, "--check-rate-limit", "--timeout", "60")
    assert result.returncode == 0, result.stdout + result.stderr + pool.log_tail()
    assert "24 tasks (8 types × priorities (1, 3, 5)) completed" in result.stdout
    assert "rate limit: 429 after" in result.stdout, result.stdout
    assert "every check passed" in result.stdout


@pytest.mark.usefixtures("flushed_redis")
def test_verify_fails_when_no_worker_runs(phase6_apis: ApiFactory) -> None:
    api = phase6_apis()
    result = verify(api, "--timeout", "2")
    assert result.returncode == 1
    assert "not completed within 2 s" in result.stdout
    assert "some checks failed" in result.stdout


def test_verify_fails_with_a_wrong_key(phase6_apis: ApiFactory, flushed_redis: redis.Redis) -> None:
    api = phase6_apis()
    command = [sys.executable, "-m", "phase6_docker.verify", "--url", api.base_url, "--api-key", "wrong", "--timeout", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "GET /ready answered 401" in result.stdout


def test_a_process_waits_for_redis_that_starts_late(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Given Redis is not up yet, the start-up wait logs each try and goes on once it answers."""
    port = free_port()
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "LOG_FORMAT": "json",
        "STARTUP_TIMEOUT_SECONDS": "30",
        "PATH": "/usr/bin:/bin",
    }
    waiting = subprocess.Popen(
        [sys.executable, "-m", "phase6_docker.startup", "--", sys.executable, "-c", "print('started after the wait')"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    late = PrivateRedis(port)
    try:
        assert waiting.stdout is not None
        first = waiting.stdout.readline()
        assert "waiting for redis at redis://127.0.0.1" in first, first
        late.start()
        output, _ = waiting.communicate(timeout=30)
    finally:
        late.cleanup()
    assert waiting.returncode == 0, output
    assert "started after the wait" in output
    assert "redis at redis://127.0.0.1" in output and "is up" in output


def test_a_process_gives_up_with_a_clear_reason() -> None:
    env = {"DATABASE_URL": "postgresql://tasklab:pw@127.0.0.1:1/tasklab", "STARTUP_TIMEOUT_SECONDS": "1", "LOG_FORMAT": "json"}
    result = subprocess.run([sys.executable, "-m", "phase6_docker.startup"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "did not answer within 1 s" in result.stdout + result.stderr
    assert "pw@" not in result.stdout + result.stderr  # the password never reaches a log line
