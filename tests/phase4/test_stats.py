"""``GET /stats`` tells the truth: every figure equals what plain SQL over the task table says.

The table is seeded directly through the database engine with tasks whose instants the test
chooses (some ended inside the window, some before it, some still in flight), then the real
API (phase 4's, and each later phase's own copy) answers ``/stats`` and each figure is recomputed here the obvious way: a
``GROUP BY`` for the counts, ``statistics.quantiles`` over the window's rows for the
percentiles. The API computes the same figures by other means (an index-only range, a count by
difference, PostgreSQL's ``percentile_cont``); agreeing with the obvious way is the proof.

The window is judged by the answer's own ``window_start``: the test and the server need not
agree on what "now" is to the microsecond, and no seeded task ends near a boundary.
"""

from __future__ import annotations

import random
import statistics
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from phase4_monitoring.monitoring.aggregates import RELATIVE_ERROR
from phase4_monitoring.monitoring.stats import (
    MAX_WINDOW_SECONDS,
    MIN_WINDOW_SECONDS,
    THROUGHPUT_MINUTES,
)
from shared.models import PRIORITY_HIGHEST, PRIORITY_LOWEST, Task, TaskStatus, utc_now
from shared.redis_server import PrivateRedis
from shared.tasks import CATALOG, TaskType
from tasklab_cli.processes import Phase, start_api
from tests.phase3.conftest import default_queue, task_worker
from tests.phase4.conftest import WorkerFactory, phase_module, queue_names
from tests.phase4.history import ended_task, insert
from tests.support import stats_disagreements, submit, wait_for_status

#: The bound /stats states for its percentiles (histogram buckets 10 % wide): relative, and
#: absolute below a millisecond.
HALF_A_MILLISECOND = 0.0005


def within_bound(expected: dict[str, float]) -> object:
    """``expected``, compared within the bound /stats states for its percentiles."""
    return pytest.approx(expected, rel=RELATIVE_ERROR, abs=HALF_A_MILLISECOND)


#: Error texts of the seeded failures and how many tasks fail with each: distinct counts, so
#: the expected order is unambiguous.
SEEDED_ERRORS: dict[str, int] = {
    "TransientTaskError: upstream service unavailable (503)": 5,
    "TimeoutError: attempt 3 timed out after 30 s and was stopped": 3,
    "PermanentTaskError: invalid image dimensions": 1,
}
#: Completed tasks per type inside the window (at least two, so every percentile is defined).
COMPLETED_PER_TYPE = 6
#: Tasks that ended before the window: they count by status, never in the window's figures.
ENDED_BEFORE_WINDOW = 12
#: Seeded tasks that have not ended.
IN_FLIGHT = {TaskStatus.PENDING: 4, TaskStatus.RUNNING: 2, TaskStatus.RETRYING: 1}
#: Seeded tasks end between these many minutes ago: inside the default one-hour window and the
#: hour of throughput, and never within a minute of either edge.
ENDED_MINUTES_AGO = (2.0, 55.0)
OUTSIDE_WINDOW_MINUTES_AGO = (90.0, 180.0)
SEED = 7


# ----------------------------------------------------------------------------------------------
# The seeded table, and the obvious SQL the answers are checked against


@pytest.fixture
def seeded(client: httpx.Client, empty_store: Engine) -> Engine:
    """A table with a known mix: completed, failed and cancelled tasks in the window, older ones, in-flight ones."""
    rng = random.Random(SEED)
    now = utc_now()

    def ended(task_type: str, status: TaskStatus, minutes_ago: tuple[float, float], error: str | None = None) -> Task:
        run = rng.uniform(0.002, 5.0)
        wait = rng.uniform(0.001, 3.0)
        completed_at = now - timedelta(minutes=rng.uniform(*minutes_ago))
        created_at = completed_at - timedelta(seconds=run + wait)
        task = ended_task(task_type, status, created_at=created_at, wait_seconds=wait, run_seconds=run, error=error)
        task.priority = rng.randint(PRIORITY_LOWEST, PRIORITY_HIGHEST)
        return task

    types = [t.value for t in CATALOG]
    tasks = [ended(t, TaskStatus.COMPLETED, ENDED_MINUTES_AGO) for t in types for _ in range(COMPLETED_PER_TYPE)]
    for error, count in SEEDED_ERRORS.items():
        tasks += [ended(rng.choice(types), TaskStatus.FAILED, ENDED_MINUTES_AGO, error) for _ in range(count)]
    tasks += [ended(rng.choice(types), TaskStatus.CANCELLED, ENDED_MINUTES_AGO, "cancelled by request") for _ in range(2)]
    tasks += [ended(rng.choice(types), TaskStatus.COMPLETED, OUTSIDE_WINDOW_MINUTES_AGO) for _ in range(ENDED_BEFORE_WINDOW)]
    tasks += [ended(types[0], TaskStatus.FAILED, OUTSIDE_WINDOW_MINUTES_AGO, "an error from before the window")]
    for status, count in IN_FLIGHT.items():
        tasks += [Task(task_type=TaskType(rng.choice(types)), payload={}, status=status, created_at=now) for _ in range(count)]
    insert(empty_store, tasks)
    return empty_store


def read_stats(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get("/stats", params=params)
    assert response.status_code == 200, response.text
    stats: dict[str, Any] = response.json()
    return stats


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def ended_rows(engine: Engine, since: datetime) -> list[Any]:
    """Every task that ended at or after ``since``: the window, read the plain way."""
    columns = Task.__table__.c  # type: ignore[attr-defined]
    statement = select(
        columns.task_type,
        columns.status,
        columns.error,
        columns.created_at,
        columns.started_at,
        columns.completed_at,
        columns.priority,
    ).where(columns.completed_at >= since)
    with engine.connect() as connection:
        return list(connection.execute(statement).all())


def quantiles(values: list[float]) -> dict[str, float]:
    """p50/p95/p99 by the standard library: linear interpolation, the definition of SQL's percentile_cont."""
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98]}


# ----------------------------------------------------------------------------------------------
# The figures


def test_counts_by_status_equal_a_group_by_over_the_whole_table(client: httpx.Client, seeded: Engine) -> None:
    columns = Task.__table__.c  # type: ignore[attr-defined]
    with seeded.connect() as connection:
        expected: dict[str, int] = dict(connection.execute(select(columns.status, func.count()).group_by(columns.status)).all())

    counts = read_stats(client)["counts"]

    assert {status.value: counts[status.value] for status in TaskStatus} == {
        status.value: expected.get(status.value, 0) for status in TaskStatus
    }
    assert counts["total"] == sum(expected.values())


def test_outcomes_per_type_count_only_the_tasks_that_ended_in_the_window(client: httpx.Client, seeded: Engine) -> None:
    stats = read_stats(client)
    rows = ended_rows(seeded, instant(stats["window_start"]))
    expected = Counter((row.task_type, row.status) for row in rows)

    by_type = {entry["task_type"]: entry for entry in stats["task_types"]}

    assert list(by_type) == [t.value for t in CATALOG], "every catalog type, in catalog order"
    for task_type, entry in by_type.items():
        completed, failed = expected[(task_type, "completed")], expected[(task_type, "failed")]
        assert (entry["completed"], entry["failed"], entry["cancelled"]) == (
            completed,
            failed,
            expected[(task_type, "cancelled")],
        )
        assert entry["failure_rate"] == pytest.approx(failed / (completed + failed))
    assert sum(entry["completed"] for entry in by_type.values()) == len(CATALOG) * COMPLETED_PER_TYPE


def test_a_requeued_dead_letter_and_a_cancelled_task_count_once_where_their_rows_say(
    client: httpx.Client, seeded: Engine, monitoring_phase: Phase
) -> None:
    """The aggregates follow every transition: a failed task sent back leaves the failures, a cancel joins them."""
    columns = Task.__table__.c  # type: ignore[attr-defined]
    with seeded.connect() as connection:
        dead_letter = connection.execute(select(columns.id).where(columns.status == "failed").limit(1)).scalar_one()
        waiting = connection.execute(select(columns.id).where(columns.status == "pending").limit(1)).scalar_one()
    transitions = phase_module(monitoring_phase, "transitions")
    with Session(seeded) as session:
        assert transitions.mark_requeued(session, dead_letter)
        assert transitions.mark_cancelled(session, waiting)

    assert stats_disagreements(read_stats(client), seeded) == []


def test_deleting_tasks_lowers_the_counts_by_status_but_not_the_windows_history(client: httpx.Client, seeded: Engine) -> None:
    before = read_stats(client)
    with seeded.begin() as connection:
        connection.execute(text("DELETE FROM task WHERE status = 'completed'"))

    after = read_stats(client)

    assert after["counts"]["completed"] == 0
    assert after["counts"]["total"] == before["counts"]["total"] - before["counts"]["completed"]
    assert [t["completed"] for t in after["task_types"]] == [t["completed"] for t in before["task_types"]]


def test_run_and_wait_percentiles_are_within_the_stated_bound_of_the_exact_ones(client: httpx.Client, seeded: Engine) -> None:
    stats = read_stats(client)
    rows = [row for row in ended_rows(seeded, instant(stats["window_start"])) if row.status == "completed"]

    for entry in stats["task_types"]:
        mine = [row for row in rows if row.task_type == entry["task_type"]]
        runs = [(row.completed_at - row.started_at).total_seconds() for row in mine]
        waits = [(row.started_at - row.created_at).total_seconds() for row in mine]
        assert entry["run_seconds"] == within_bound(quantiles(runs)), entry["task_type"]
        assert entry["wait_seconds"] == within_bound(quantiles(waits)), entry["task_type"]


def test_each_priority_level_shows_its_completed_tasks_and_their_queue_wait_within_the_bound(
    client: httpx.Client, seeded: Engine
) -> None:
    stats = read_stats(client)
    rows = [row for row in ended_rows(seeded, instant(stats["window_start"])) if row.status == "completed"]

    levels = stats["priorities"]

    assert [level["priority"] for level in levels] == [5, 4, 3, 2, 1], "every level, highest first"
    for level in levels:
        mine = [row for row in rows if row.priority == level["priority"]]
        assert level["completed"] == len(mine), level["priority"]
        if len(mine) >= 2:  # a percentile of fewer than two values is not compared
            waits = [(row.started_at - row.created_at).total_seconds() for row in mine]
            assert level["wait_seconds"] == within_bound(quantiles(waits)), level["priority"]
    assert sum(level["completed"] for level in levels) == len(rows)


def test_throughput_counts_the_tasks_that_ended_in_each_minute_of_the_last_hour(client: httpx.Client, seeded: Engine) -> None:
    stats = read_stats(client)
    series = stats["throughput"]
    start = instant(series[0]["minute"])
    expected: Counter[tuple[int, str]] = Counter()
    for row in ended_rows(seeded, start):
        expected[(int((row.completed_at - start).total_seconds() // 60), row.status)] += 1

    assert len(series) == THROUGHPUT_MINUTES
    assert [instant(m["minute"]) for m in series] == [start + timedelta(minutes=i) for i in range(THROUGHPUT_MINUTES)]
    assert instant(series[-1]["minute"]) <= instant(stats["generated_at"]) < instant(series[-1]["minute"]) + timedelta(minutes=1)
    assert [(m["completed"], m["failed"]) for m in series] == [
        (expected[(i, "completed")], expected[(i, "failed")]) for i in range(THROUGHPUT_MINUTES)
    ]


def test_top_errors_are_the_most_frequent_failure_texts_in_the_window(client: httpx.Client, seeded: Engine) -> None:
    stats = read_stats(client)
    failed = [row for row in ended_rows(seeded, instant(stats["window_start"])) if row.status == "failed"]
    expected = Counter(row.error for row in failed).most_common()

    assert (
        [(e["error"], e["count"]) for e in stats["top_errors"]]
        == expected
        == sorted(SEEDED_ERRORS.items(), key=lambda item: -item[1])
    )
    assert read_stats(client, top_errors=1)["top_errors"][0]["error"] == expected[0][0]


def test_a_wider_window_takes_in_the_older_tasks(client: httpx.Client, seeded: Engine) -> None:
    narrow, wide = read_stats(client, window="1h"), read_stats(client, window="4h")

    completed = [sum(entry["completed"] for entry in s["task_types"]) for s in (narrow, wide)]

    assert completed == [len(CATALOG) * COMPLETED_PER_TYPE, len(CATALOG) * COMPLETED_PER_TYPE + ENDED_BEFORE_WINDOW]
    assert "an error from before the window" in [e["error"] for e in wide["top_errors"]]


# ----------------------------------------------------------------------------------------------
# ?window=


@pytest.mark.parametrize(
    ("window", "seconds"),
    [
        (None, 3600),
        ("3600", 3600),
        ("90s", 90),
        ("15m", 900),
        ("90m", 5400),
        ("1h", 3600),
        ("7d", MAX_WINDOW_SECONDS),
        ("60", MIN_WINDOW_SECONDS),
    ],
)
def test_window_is_seconds_or_a_number_with_a_unit(client: httpx.Client, window: str | None, seconds: int) -> None:
    stats = read_stats(client, **({"window": window} if window else {}))

    start, generated = instant(stats["window_start"]), instant(stats["generated_at"])
    assert stats["window_seconds"] == seconds
    assert start == start.replace(second=0, microsecond=0), "the window starts on a whole minute"
    assert timedelta(seconds=seconds) <= generated - start < timedelta(seconds=seconds + 60)


@pytest.mark.parametrize("window", ["0", "59", "59s", "8d", "604801", "9999999d"])
def test_a_window_out_of_bounds_is_a_422_that_names_the_bounds(client: httpx.Client, window: str) -> None:
    response = client.get("/stats", params={"window": window})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "window"]
    assert "between 60 s (1m) and 604800 s (7d)" in error["msg"]


@pytest.mark.parametrize("window", ["abc", "1w", "-5", "1.5h", "1h30m", ""])
def test_a_malformed_window_is_a_422(client: httpx.Client, window: str) -> None:
    response = client.get("/stats", params={"window": window})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "window"]


@pytest.mark.parametrize("top_errors", ["0", "51", "x"])
def test_top_errors_out_of_range_is_a_422(client: httpx.Client, top_errors: str) -> None:
    assert client.get("/stats", params={"top_errors": top_errors}).status_code == 422


def test_stats_is_documented_in_openapi_with_an_example(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/stats"]["get"]

    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Stats"}
    assert {"422"} <= set(operation["responses"])
    assert {p["name"] for p in operation["parameters"]} == {"window", "top_errors"}
    assert schema["components"]["schemas"]["Stats"]["examples"]


# ----------------------------------------------------------------------------------------------
# Redis: queues and workers


def waiting_in(phase: Phase, default_priority: int) -> list[dict[str, object]]:
    """``/stats``'s queue list when ``default_priority`` jobs of the default priority wait: every
    queue of the phase listed, the others empty."""
    return [{"name": name, "queued": default_priority if name == default_queue(phase) else 0} for name in queue_names(phase)]


def test_queue_depth_counts_the_jobs_waiting_and_no_worker_is_alive(client: httpx.Client, monitoring_phase: Phase) -> None:
    for _ in range(3):
        submit(client, "noop")

    redis_figures = read_stats(client)["redis"]

    assert redis_figures["reachable"] is True
    assert redis_figures["queues"] == waiting_in(monitoring_phase, 3)
    assert (redis_figures["workers_alive"], redis_figures["workers"]) == (0, [])


def test_a_real_worker_run_shows_in_every_figure(client: httpx.Client, workers: WorkerFactory, monitoring_phase: Phase) -> None:
    """Given a worker, when tasks complete and one fails for good, then /stats shows each of them."""
    worker = workers(extra_env={"WORKER_NAME": "stats-e2e-worker"})
    ids = [submit(client, "noop")["id"] for _ in range(5)] + [submit(client, "fibonacci", {"n": 10})["id"]]
    doomed = submit(client, TaskType.FLAKY.value, {"fail_times": 1, "permanent": True})["id"]
    for task_id in ids:
        assert wait_for_status(client, task_id)["status"] == "completed"
    assert wait_for_status(client, doomed)["status"] == "failed"

    stats = read_stats(client)
    by_type = {entry["task_type"]: entry for entry in stats["task_types"]}

    assert (stats["counts"]["completed"], stats["counts"]["failed"], stats["counts"]["total"]) == (6, 1, 7)
    assert (by_type["noop"]["completed"], by_type["fibonacci"]["completed"], by_type["flaky"]["failed"]) == (5, 1, 1)
    assert by_type["flaky"]["failure_rate"] == 1.0
    assert by_type["noop"]["run_seconds"]["p50"] is not None and by_type["noop"]["wait_seconds"]["p99"] is not None
    assert sum(m["completed"] for m in stats["throughput"]) == 6 and sum(m["failed"] for m in stats["throughput"]) == 1
    assert stats["top_errors"][0]["count"] == 1 and "fails on purpose" in stats["top_errors"][0]["error"]
    assert stats["redis"]["queues"] == waiting_in(monitoring_phase, 0)
    assert stats["redis"]["workers_alive"] == 1, worker.process.log_tail()
    assert [w["name"] for w in stats["redis"]["workers"]] == [task_worker(monitoring_phase, "stats-e2e-worker")]


def test_with_redis_down_stats_still_answers_with_the_database_figures(
    env: dict[str, str], empty_store: Engine, monitoring_phase: Phase, headers: dict[str, str], own_redis: PrivateRedis
) -> None:
    """Redis down is a fact to report: 200, the database's counts, and the Redis figures marked unreachable.

    The API starts with its Redis up (phase 6 waits for it at start) and loses it afterwards."""
    insert(empty_store, [Task(task_type=TaskType.NOOP, payload={}, status=TaskStatus.PENDING)])
    server = start_api(monitoring_phase, {**env, "REDIS_URL": own_redis.url})
    try:
        own_redis.kill()
        response = httpx.get(f"{server.base_url}/stats", headers=headers, timeout=10)
    finally:
        server.stop()

    assert response.status_code == 200, response.text
    stats = response.json()
    assert (stats["counts"]["pending"], stats["counts"]["total"]) == (1, 1)
    assert stats["redis"]["reachable"] is False
    assert "Redis unreachable" in stats["redis"]["detail"]
    assert (stats["redis"]["queues"], stats["redis"]["workers_alive"], stats["redis"]["workers"]) == (None, None, None)


def test_an_empty_table_gives_zeros_and_nulls_not_errors(client: httpx.Client) -> None:
    stats = read_stats(client)

    assert stats["counts"] == {status.value: 0 for status in TaskStatus} | {"total": 0}
    assert all(entry["failure_rate"] is None and entry["run_seconds"]["p50"] is None for entry in stats["task_types"])
    assert stats["top_errors"] == [] and not any(m["completed"] or m["failed"] for m in stats["throughput"])


def test_concurrent_requests_share_one_computation_in_a_process_and_across_processes(
    env: dict[str, str], seeded: Engine, monitoring_phase: Phase, headers: dict[str, str]
) -> None:
    """Given two API processes with the one-second cache, when ten dashboards ask at once, one computation answers all."""
    cached = {**env, "STATS_CACHE_SECONDS": "1"}
    servers = [start_api(monitoring_phase, cached), start_api(monitoring_phase, cached)]
    try:
        urls = [f"{servers[i % 2].base_url}/stats" for i in range(10)]
        with ThreadPoolExecutor(max_workers=10) as pool:
            answers = list(pool.map(lambda url: httpx.get(url, headers=headers, timeout=10).json(), urls))
    finally:
        for server in servers:
            server.stop()

    assert len({answer["generated_at"] for answer in answers}) == 1
