"""The metrics contract (the table in docs/04-monitoring.md, generated from
phase4_monitoring/monitoring/metrics.py), checked the way an operator would rely on it, on
phase 4 and on every later phase's own copy (``tests/phase4/conftest.py``).

Real processes export, a real ``promtool`` lints, a real Prometheus scrapes; the database is the
referee. The central promise: summed over every endpoint Prometheus scrapes, a task counter
equals what the database says, even after a worker was SIGKILLed in the middle of a run.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tasklab_cli.processes import ApiProcess, Phase, start_api
from tests.phase3.conftest import crash, default_queue, task_worker
from tests.phase4.conftest import (
    MonitoredWorker,
    WorkerFactory,
    phase_module,
    start_prometheus,
)
from tests.support import sample, scrape, submit, wait_for, wait_for_status

#: About half a second of CPU each: long enough that a worker is killed in the middle of some.
SLOW = ("compute", {"n": 15_000_000})


def completed_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM task WHERE status = 'completed'")).scalar_one())


def running_on(engine: Engine, worker: str, task_type: str) -> bool:
    """Whether ``worker`` is running a task of ``task_type`` right now."""
    with engine.connect() as connection:
        query = text("SELECT count(*) FROM task WHERE status = 'running' AND worker = :worker AND task_type = :task_type")
        return bool(connection.execute(query, {"worker": worker, "task_type": task_type}).scalar_one())


def all_finished(client: httpx.Client, total: int) -> bool:
    page = client.get("/tasks", params={"limit": 1, "status": "completed"}).json()
    return bool(page["total"] == total)


# ---------------------------------------------------------------------------------------------
# The exposition format


def test_promtool_accepts_the_api_and_the_worker_metrics(
    promtool_binary: str, client: httpx.Client, api: ApiProcess, workers: WorkerFactory, scrape_api: Callable[[ApiProcess], str]
) -> None:
    worker = workers()
    # Every kind of sample: completed and failed tasks, a retry, histograms, HTTP metrics.
    for task_type, payload in [
        ("noop", {}),
        ("fibonacci", {"n": 10}),
        ("flaky", {"fail_times": 1}),
        ("flaky", {"fail_times": 9}),
    ]:
        wait_for_status(client, submit(client, task_type, payload)["id"])

    for name, exposition in (("the API", scrape_api(api)), ("the worker", scrape(worker.metrics_url))):
        checked = subprocess.run([promtool_binary, "check", "metrics"], input=exposition.encode(), capture_output=True)
        assert checked.returncode == 0, f"{name}: {checked.stdout.decode()}{checked.stderr.decode()}"


def test_the_route_label_is_the_route_template_never_the_raw_path(
    client: httpx.Client, api: ApiProcess, scrape_api: Callable[[ApiProcess], str]
) -> None:
    task = submit(client, "noop")
    client.get(f"/tasks/{task['id']}")
    client.get(f"/tasks/{uuid.uuid4()}")  # a 404 is labelled by its route too
    client.get("/no/such/route")

    metrics = scrape_api(api)

    assert sample(metrics, "tasklab_http_requests_total", route="/tasks/{task_id}", status="200") >= 1
    assert sample(metrics, "tasklab_http_requests_total", route="/tasks/{task_id}", status="404") >= 1
    assert sample(metrics, "tasklab_http_requests_total", route="<unmatched>", status="404") >= 1
    assert task["id"] not in metrics


def test_submitted_tasks_are_counted_by_type_and_priority(
    client: httpx.Client, api: ApiProcess, scrape_api: Callable[[ApiProcess], str]
) -> None:
    before = sample(scrape_api(api), "tasklab_tasks_submitted_total", task_type="fibonacci", priority="5")

    for _ in range(3):
        submit(client, "fibonacci", {"n": 5}, priority=5)

    after = sample(scrape_api(api), "tasklab_tasks_submitted_total", task_type="fibonacci", priority="5")
    assert after - before == 3


def test_queue_depth_and_workers_alive_come_from_redis(
    client: httpx.Client,
    api: ApiProcess,
    workers: WorkerFactory,
    scrape_api: Callable[[ApiProcess], str],
    monitoring_phase: Phase,
) -> None:
    queue = default_queue(monitoring_phase)
    for _ in range(4):
        submit(client, "noop")
    waiting = scrape_api(api)
    assert sample(waiting, "tasklab_queue_depth", queue=queue) == 4
    assert sample(waiting, "tasklab_workers_alive") == 0

    workers()

    wait_for(lambda: sample(scrape_api(api), "tasklab_workers_alive") == 1, message="one worker alive")
    wait_for(
        lambda: sample(scrape_api(api), "tasklab_queue_depth", queue=queue) == 0,
        message="queue drained",
    )


def test_a_work_horse_counts_survive_the_horse(
    client: httpx.Client, workers: WorkerFactory, fresh_deployment: dict[str, str]
) -> None:
    """Each job runs in a forked horse that exits after it; the parent still exports its counts."""
    worker = workers(extra_env=fresh_deployment)
    for task_type, payload in [("noop", {}), ("noop", {}), ("flaky", {"fail_times": 1})]:
        wait_for_status(client, submit(client, task_type, payload)["id"])

    metrics = scrape(worker.metrics_url)

    assert sample(metrics, "tasklab_tasks_finished_total", task_type="noop", outcome="completed") == 2
    assert sample(metrics, "tasklab_tasks_finished_total", task_type="flaky", outcome="completed") == 1
    assert sample(metrics, "tasklab_task_retries_total", task_type="flaky") == 1
    assert sample(metrics, "tasklab_task_run_seconds_count", task_type="noop") == 2
    assert sample(metrics, "tasklab_task_wait_seconds_count") == 4  # 3 tasks, one of them twice


def test_a_cancel_is_counted_once_as_a_finished_task(
    client: httpx.Client, api: ApiProcess, scrape_api: Callable[[ApiProcess], str]
) -> None:
    def cancelled() -> float:
        return sample(scrape_api(api), "tasklab_tasks_finished_total", task_type="noop", outcome="cancelled")

    before = cancelled()
    task = submit(client, "noop")  # no worker: it stays pending

    assert client.post(f"/tasks/{task['id']}/cancel").status_code == 200
    assert client.post(f"/tasks/{task['id']}/cancel").status_code == 409

    assert cancelled() - before == 1


def test_reconciler_repairs_are_counted_on_the_worker_endpoint(
    client: httpx.Client, workers: WorkerFactory, redis_client: redis.Redis
) -> None:
    ids = [submit(client, "noop")["id"] for _ in range(3)]
    redis_client.flushdb()  # the jobs are gone: only the reconciler can bring them back

    worker = workers()

    for task_id in ids:
        wait_for_status(client, task_id, timeout=20)
    wait_for(
        lambda: sample(scrape(worker.metrics_url), "tasklab_reconciler_repairs_total", kind="enqueued") >= 3, message="3 repairs"
    )


# ---------------------------------------------------------------------------------------------
# Prometheus, scraping the API and two workers


@pytest.fixture
def fresh_api(
    monitoring_phase: Phase, fresh_deployment: dict[str, str], empty_store: Engine, redis_client: redis.Redis
) -> Iterator[ApiProcess]:
    redis_client.flushdb()
    server = start_api(monitoring_phase, fresh_deployment)
    yield server
    server.stop()


@pytest.fixture
def fresh_client(fresh_api: ApiProcess, headers: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fresh_api.base_url, headers=headers, timeout=10) as http:
        yield http


#: How many tasks a Prometheus run counts: enough to prove the sums in every run, and the
#: chapter's full size in the slow set (make test-slow, CI).
RUN_SIZES = [pytest.param(60, id="60-tasks"), pytest.param(200, id="200-tasks", marks=pytest.mark.slow)]


@pytest.mark.parametrize("total", RUN_SIZES)
def test_prometheus_sum_of_completed_equals_the_database(
    fresh_client: httpx.Client,
    fresh_api: ApiProcess,
    fresh_deployment: dict[str, str],
    workers: WorkerFactory,
    empty_store: Engine,
    prometheus_binary: str,
    monitoring_phase: Phase,
    total: int,
) -> None:
    client = fresh_client
    pool = [workers(extra_env=fresh_deployment), workers(extra_env=fresh_deployment)]
    for worker in pool:
        scrape(worker.metrics_url)
    with start_prometheus(fresh_api, pool, monitoring_phase) as prometheus:
        ids = [submit(client, "fibonacci", {"n": 20})["id"] for _ in range(total)]
        wait_for(lambda: all_finished(client, len(ids)), timeout=120, interval=0.5, message=f"{total} tasks completed")

        # Scrapes come every second and one may time out on a busy machine: wait, bounded, for
        # the state where Prometheus' latest samples of every target agree with the table.
        query = 'sum(tasklab_tasks_finished_total{outcome="completed"})'
        wait_for(lambda: prometheus.scalar(query) == completed_rows(empty_store), timeout=15, message=query)
        submitted = "sum(tasklab_tasks_submitted_total)"
        wait_for(lambda: prometheus.scalar(submitted) == total, timeout=15, message=f"{total} submitted")

    assert completed_rows(empty_store) == total


@pytest.mark.parametrize("total", RUN_SIZES)
def test_prometheus_sum_still_equals_the_database_after_a_worker_was_sigkilled_mid_run(
    fresh_client: httpx.Client,
    fresh_api: ApiProcess,
    fresh_deployment: dict[str, str],
    workers: WorkerFactory,
    empty_store: Engine,
    prometheus_binary: str,
    monitoring_phase: Phase,
    total: int,
) -> None:
    """The killed worker's counts live on in its files; a surviving exporter adopts and exports them."""
    client = fresh_client
    victim = workers("--name", "victim", extra_env=fresh_deployment)
    survivor = workers("--name", "survivor", extra_env=fresh_deployment)
    victim_name = task_worker(monitoring_phase, "victim")
    pool: list[MonitoredWorker] = [victim, survivor]
    for worker in pool:
        scrape(worker.metrics_url)
    with start_prometheus(fresh_api, pool, monitoring_phase) as prometheus:
        ids = [submit(client, *SLOW)["id"] if i % 10 == 0 else submit(client, "fibonacci", {"n": 20})["id"] for i in range(total)]
        # Killed in the middle of a long task, as a crash usually finds a worker. (A kill in the
        # microseconds between a commit and its count would lose that one count: the one gap
        # of counting outside the database, which chapter 4 names.)
        wait_for(lambda: completed_rows(empty_store) >= total // 3, timeout=60, interval=0.05, message="a third of the run done")

        def victim_inside_a_slow_task() -> bool | None:
            if running_on(empty_store, victim_name, SLOW[0]):
                return True
            ids.append(submit(client, *SLOW)["id"])  # one more, until the victim is the one that takes it
            return None

        wait_for(victim_inside_a_slow_task, timeout=60, interval=0.5, message="the victim inside a slow task")
        killed_after = completed_rows(empty_store)

        crash(victim.process)

        wait_for(lambda: all_finished(client, len(ids)), timeout=120, interval=0.5, message="every task completed")
        query = 'sum(tasklab_tasks_finished_total{outcome="completed"})'
        try:
            wait_for(lambda: prometheus.scalar(query) == completed_rows(empty_store), timeout=15, message=query)
        except AssertionError:
            by_target = prometheus.query('sum by (instance) (tasklab_tasks_finished_total{outcome="completed"})')
            raise AssertionError(
                f"{query} = {prometheus.scalar(query)} but {completed_rows(empty_store)} rows; by target: {by_target}; "
                f"retries: {prometheus.scalar('sum(tasklab_task_retries_total)')}; "
                f"repairs: {prometheus.query('sum by (kind) (tasklab_reconciler_repairs_total)')}"
            ) from None

        def victim_down() -> list[dict[str, object]] | None:
            # Seen at Prometheus's next scrape of the dead endpoint: a fast run can end before it.
            return [r for r in prometheus.query('up{job="workers"}') if r["value"][1] == "0"] or None

        victim_seen = wait_for(victim_down, timeout=15, interval=0.2, message="the killed worker's endpoint seen down")

    assert completed_rows(empty_store) == len(ids)
    assert 0 < killed_after < len(ids)
    assert victim_seen, "Prometheus should see the killed worker's endpoint down"


# ---------------------------------------------------------------------------------------------
# The names are a contract


#: The metrics contract, as chapter 4's table states it: every name, its type and its labels.
CONTRACT = {
    "tasklab_tasks_submitted_total": ("counter", "`task_type`, `priority`"),
    "tasklab_tasks_finished_total": ("counter", "`task_type`, `outcome`"),
    "tasklab_task_retries_total": ("counter", "`task_type`"),
    "tasklab_task_run_seconds": ("histogram", "`task_type`"),
    "tasklab_task_wait_seconds": ("histogram", "`task_type`"),
    "tasklab_queue_depth": ("gauge", "`queue`"),
    "tasklab_workers_alive": ("gauge", "–"),
    "tasklab_reconciler_repairs_total": ("counter", "`kind`"),
    "tasklab_http_requests_total": ("counter", "`method`, `route`, `status`"),
    "tasklab_http_request_duration_seconds": ("histogram", "`method`, `route`"),
}


def test_every_metric_of_the_contract_is_defined_with_its_type_and_labels(monitoring_phase: Phase) -> None:
    reference_table = phase_module(monitoring_phase, "monitoring.metrics").reference_table
    rows = {
        cells[1].strip("` "): (cells[2].strip(), cells[3].strip())
        for cells in (row.split("|") for row in reference_table().splitlines()[2:])
    }

    assert rows == CONTRACT
