"""The exercises at the end of chapters 1 to 6: each solution (tests/docs/exercises/) works
against the real code, with a real SQLite database and, from chapter 2 on, a real Redis.
Chapter 6's need no Docker: they read the real compose.yaml, Dockerfile and envfile.py output,
and drive phase 6's app (its API keys and rate limit) in process."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from redis import Redis
from sqlmodel import Session

from phase3_retry.recovery.backoff import backoff_intervals
from phase3_retry.recovery.settings import RecoverySettings
from phase5_scaling.db import create_db_engine, init_db
from phase5_scaling.scaling.cache import IMMUTABLE_STATUSES
from phase5_scaling.scaling.jobs import PRIORITIES, make_queues, queue_for
from phase5_scaling.scaling.priorities import promote_overdue
from phase5_scaling.store import insert_task
from phase6_docker.envfile import write_deployment_files
from phase6_docker.security import hash_key
from shared.models import TaskCreate, TaskStatus
from shared.redis_server import PrivateRedis
from shared.tasks import TaskType
from tests.docs.exercises import ch1_client, ch2_queue, ch3_retry, ch4_monitoring, ch5_scaling, ch6_docker


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ["REDIS_URL", "TASK_POLICIES", "METRICS_DIR"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'tasks.db'}")
    monkeypatch.setenv("TASK_TIME_SCALE", "0")
    monkeypatch.setenv("METRICS_DIR", str(tmp_path / "metrics"))
    return tmp_path


@pytest.fixture
def redis_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateRedis]:
    server = PrivateRedis(persistent=False).start()
    monkeypatch.setenv("REDIS_URL", server.url)
    try:
        yield server
    finally:
        server.cleanup()


def client_for(app: FastAPI) -> TestClient:
    return TestClient(app)


# Chapter 1 ---------------------------------------------------------------------------------


def test_ch1_ex1_the_client_waits_for_the_result_and_gives_up_at_its_timeout(environment: Path) -> None:
    from phase1_basic.api import app

    with client_for(app) as client:
        task = ch1_client.submit_and_wait(client, "fibonacci", {"n": 10}, timeout=10)
        assert (task["status"], task["result"]) == ("completed", 55)

        failed = ch1_client.submit_and_wait(client, "flaky", {"fail_times": 1, "permanent": True}, timeout=10)
        assert failed["status"] == "failed" and "fails on purpose" in failed["error"]


def test_ch1_ex1_a_task_that_never_ends_times_out(environment: Path) -> None:
    from phase2_queue.api import app  # a queue with no worker: the task stays pending

    server = PrivateRedis(persistent=False).start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("REDIS_URL", server.url)
            with client_for(app) as client, pytest.raises(TimeoutError, match="still pending"):
                ch1_client.submit_and_wait(client, "noop", {}, timeout=0.5)
    finally:
        server.cleanup()


def test_ch1_ex2_of_eight_simultaneous_claims_exactly_one_wins(environment: Path) -> None:
    engine = create_db_engine(f"sqlite:///{environment / 'race.db'}")
    init_db(engine)
    with Session(engine, expire_on_commit=False) as session:
        task = insert_task(session, TaskCreate(task_type=TaskType.NOOP, payload={}))

    assert ch1_client.claim_race(engine, task.id, claimants=8) == 1
    engine.dispose()


# Chapter 2 ---------------------------------------------------------------------------------


def test_ch2_ex1_ready_names_redis_once_it_is_down(environment: Path, redis_server: PrivateRedis) -> None:
    from phase2_queue.api import app

    with client_for(app) as client:
        assert ch2_queue.down_dependencies(client) == []
        redis_server.kill()
        assert ch2_queue.down_dependencies(client) == ["redis"]


def test_ch2_ex2_a_job_names_one_fixed_function_and_carries_only_the_task_id(
    environment: Path, redis_server: PrivateRedis
) -> None:
    from phase2_queue.api import app

    with client_for(app) as client:
        task = client.post("/tasks", json={"task_type": "fibonacci", "payload": {"n": 10}}).json()

    function, arguments = ch2_queue.job_call(Redis.from_url(redis_server.url), task["id"])

    assert (function, arguments) == ("phase2_queue.jobs.process_task", [task["id"]])


# Chapter 3 ---------------------------------------------------------------------------------


def test_ch3_ex1_the_policy_applies_to_flaky_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ch3_retry.FLAKY_POLICY_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    settings = RecoverySettings()
    flaky, other = settings.policy_for("flaky"), settings.policy_for("fibonacci")

    assert (flaky.max_attempts, flaky.backoff_base_seconds, flaky.backoff_cap_seconds) == (6, 2, 10)
    assert backoff_intervals(flaky.max_attempts - 1, base=flaky.backoff_base_seconds, cap=flaky.backoff_cap_seconds) == [
        2,
        4,
        8,
        10,
        10,
    ]
    assert other == RecoverySettings(task_policies={}).policy_for("fibonacci")


def test_ch3_ex2_no_jittered_schedule_waits_longer_than_the_worst_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASK_POLICIES", raising=False)
    policy = RecoverySettings().policy_for("flaky")
    worst = ch3_retry.worst_case_wait(policy)

    assert worst == 1 + 2 + 4 + 8  # the defaults: 5 attempts, waits from 1 s, doubling
    for seed in range(200):
        waits = backoff_intervals(
            policy.max_attempts - 1,
            base=policy.backoff_base_seconds,
            factor=policy.backoff_factor,
            cap=policy.backoff_cap_seconds,
            jitter=policy.backoff_jitter,
            rng=random.Random(seed),
        )
        assert sum(waits) <= worst


# Chapter 4 ---------------------------------------------------------------------------------


def test_ch4_ex1_the_metric_read_from_metrics_counts_the_submissions(environment: Path, redis_server: PrivateRedis) -> None:
    from phase4_monitoring.api import app

    with client_for(app) as client:
        before = ch4_monitoring.submitted(client.get("/metrics").text, "noop")
        for _ in range(3):
            client.post("/tasks", json={"task_type": "noop", "payload": {}}, params={}).raise_for_status()
        client.post("/tasks", json={"task_type": "fibonacci", "payload": {"n": 3}}).raise_for_status()
        after = ch4_monitoring.submitted(client.get("/metrics").text, "noop")

    assert (before, after) == (0.0, 3.0)


def test_ch4_ex2_the_request_id_is_echoed_and_stored_and_an_unsafe_one_replaced(
    environment: Path, redis_server: PrivateRedis
) -> None:
    from phase4_monitoring.api import app

    with client_for(app) as client:
        echoed, task = ch4_monitoring.submit_with_request_id(client, "checkout-42")
        assert echoed == task["request_id"] == "checkout-42"

        echoed, task = ch4_monitoring.submit_with_request_id(client, "bad id\twith a tab")
        assert echoed == task["request_id"] != "bad id\twith a tab"


# Chapter 5 ---------------------------------------------------------------------------------


def test_ch5_ex1_the_cacheable_statuses_are_exactly_the_ones_the_cache_keeps() -> None:
    assert ch5_scaling.cacheable_statuses() == IMMUTABLE_STATUSES == {TaskStatus.COMPLETED, TaskStatus.CANCELLED}
    assert TaskStatus.FAILED not in ch5_scaling.cacheable_statuses(), "an operator's retry moves a failed task on"


def test_ch5_ex2_an_overdue_low_priority_job_is_taken_before_the_urgent_ones(redis_server: PrivateRedis) -> None:
    connection = Redis.from_url(redis_server.url)
    queues = make_queues(connection)
    job = "phase5_scaling.scaling.jobs.process_task"
    urgent = [queue_for(queues, 5).enqueue_call(job, args=(job_id,), job_id=job_id).id for job_id in ("u1", "u2", "u3")]
    queue_for(queues, 1).enqueue_call(job, args=("late",), job_id="late")
    assert ch5_scaling.next_job_ids(connection, queues, 4) == [*urgent, "late"], "strict order: the urgent ones first"

    promote_overdue(connection, queues, PRIORITIES, {1: 60, 2: 30, 3: 15, 4: 5}, now=time.time() + 61)

    assert ch5_scaling.next_job_ids(connection, queues, 4) == ["late", *urgent], "past its bound, it jumps the queue"


# Chapter 6 ---------------------------------------------------------------------------------


def test_ch6_ex1_only_the_api_is_published_to_other_machines() -> None:
    assert ch6_docker.published_to_the_network(ch6_docker.load_compose()) == ["api"]


@pytest.mark.parametrize(
    ("port", "reachable"),
    [
        ("8000", True),  # a container port alone: a random host port, on every interface
        (8000, True),
        ("8000:8000", True),
        ("${API_PORT:-8000}:8000", True),  # four colons, no address
        ("0.0.0.0:8000:8000/tcp", True),
        ("192.168.1.5:8000:8000", True),
        ("127.0.0.1:${PROMETHEUS_PORT:-9090}:9090", False),
        ("::1:9090:9090", False),
        ("[::1]:9090:9090", False),
        ({"target": 9090, "published": "9090", "host_ip": "127.0.0.1"}, False),
        ({"target": 9090, "published": "9090"}, True),
    ],
)
def test_ch6_ex1_a_port_is_private_only_on_a_loopback_address(port: object, reachable: bool) -> None:
    assert ch6_docker.reachable_from_other_machines(port) is reachable


def test_ch6_ex1_api_and_worker_get_their_health_check_from_the_dockerfile() -> None:
    assert ch6_docker.health_checks(ch6_docker.load_compose()) == {
        "postgres": "compose",
        "redis": "compose",
        "schema": "disabled",
        "api": "Dockerfile",
        "worker": "Dockerfile",
        "prometheus": "compose",
    }


def test_ch6_ex2_a_fresh_env_file_sets_every_variable_compose_requires(tmp_path: Path) -> None:
    write_deployment_files(tmp_path / ".env", tmp_path / "secrets", ["admin"])

    assert ch6_docker.missing_variables((tmp_path / ".env").read_text(), ch6_docker.load_compose()) == []


def test_ch6_ex2_a_removed_or_emptied_password_is_named(tmp_path: Path) -> None:
    write_deployment_files(tmp_path / ".env", tmp_path / "secrets", ["admin"])
    lines = (tmp_path / ".env").read_text().splitlines()
    edited = [
        "POSTGRES_PASSWORD=" if line.startswith("POSTGRES_PASSWORD=") else line
        for line in lines
        if not line.startswith("REDIS_PASSWORD=")
    ]

    missing = ch6_docker.missing_variables("\n".join(edited), ch6_docker.load_compose())

    assert missing == ["POSTGRES_PASSWORD", "REDIS_PASSWORD"], "an empty value fails ${NAME:?…} as an unset one does"


def test_ch6_ex2_only_the_secrets_are_required_everything_else_has_a_default() -> None:
    required = ch6_docker.missing_variables("", ch6_docker.load_compose())

    assert required == ["API_KEY_HASHES", "POSTGRES_PASSWORD", "REDIS_PASSWORD"]


def test_ch6_ex3_a_client_that_waits_retry_after_gets_in_once_the_budget_is_spent(
    environment: Path, redis_server: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "exercise-key-0123456789abcdefghijklmnopqrstu"
    monkeypatch.setenv("API_KEY_HASHES", f"exercise:{hash_key(key)}")
    monkeypatch.setenv("RATE_LIMIT_REQUESTS", "3")  # one slot a second, a burst of 3
    monkeypatch.setenv("RATE_LIMIT_PERIOD_SECONDS", "3")
    from phase6_docker.api import create_app

    noop = {"task_type": "noop", "payload": {}}
    with TestClient(create_app(), headers={"Authorization": f"Bearer {key}"}) as client:
        spent = [client.post("/tasks", json=noop).status_code for _ in range(3)]
        started = time.monotonic()
        response, slept = ch6_docker.submit_politely(client, noop)
        elapsed = time.monotonic() - started

    assert spent == [202, 202, 202]
    assert response.status_code == 202
    assert slept == 1.0, "refused once, told to come back in 1 s (a slot opens every second)"
    assert elapsed >= slept
