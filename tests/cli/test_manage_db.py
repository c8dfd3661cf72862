"""``python -m tasklab_cli.manage_db show N | clear N | init``, run as a real process.

Every test runs on SQLite and, when ``TEST_DATABASE_URL`` is set, on PostgreSQL (the
``database_url`` fixture's ids). Rows are seeded with ``phase5_scaling.store.insert_task`` at
known creation times, so "newest" and "oldest" are exact.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text, update
from sqlalchemy.engine import Engine, make_url
from sqlmodel import select

from phase5_scaling.db import create_db_engine, session_scope
from phase5_scaling.monitoring import aggregates
from phase5_scaling.store import insert_task
from shared.models import Task, TaskCreate, TaskStatus, utc_now
from shared.redis_server import free_port
from shared.tasks import TaskType
from tests.support import wait_for

S = TaskStatus
UNFINISHED = (S.PENDING, S.RUNNING, S.RETRYING)
FINISHED = (S.COMPLETED, S.FAILED, S.CANCELLED)


def manage_db(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the command as a user would; ``DATABASE_URL`` comes only from ``env``."""
    base = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "tasklab_cli.manage_db", *args],
        capture_output=True, text=True, timeout=60, cwd=cwd, env={**base, **(env or {})},
    )  # fmt: skip


def seed(engine: Engine, *statuses: TaskStatus, error: str | None = None) -> list[uuid.UUID]:
    """One task per status, created one second apart in the order given (the first is the oldest)."""
    start = utc_now() - timedelta(hours=1)
    ids = []
    with session_scope(engine) as session:
        for offset, status in enumerate(statuses):
            ended = start + timedelta(seconds=offset, milliseconds=500) if status in FINISHED else None
            task = insert_task(
                session,
                TaskCreate(task_type=TaskType.FIBONACCI, payload={"n": offset}, priority=1 + offset % 5),
                status=status, created_at=start + timedelta(seconds=offset), completed_at=ended, error=error,
            )  # fmt: skip
            ids.append(task.id)
    return ids


def remaining_ids(engine: Engine) -> set[uuid.UUID]:
    with session_scope(engine) as session:
        return set(session.exec(select(Task.id)).all())


@pytest.fixture
def fresh_database_url(backend: str, database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database with no table: a new SQLite file, or a new PostgreSQL schema."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    schema = f"manage_db_{uuid.uuid4().hex[:12]}"
    admin = create_db_engine(database_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield make_url(database_url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


# show ------------------------------------------------------------------------------------


def test_show_lists_the_last_n_tasks_newest_first(empty_store: Engine, database_url: str, tmp_path: Path) -> None:
    ids = seed(empty_store, S.COMPLETED, S.FAILED, S.RUNNING, S.PENDING, S.RETRYING)

    result = manage_db("--database-url", database_url, "show", "3", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    newest_three = [str(task_id) for task_id in reversed(ids[2:])]
    positions = [result.stdout.index(task_id) for task_id in newest_three]
    assert positions == sorted(positions)
    assert str(ids[0]) not in result.stdout and str(ids[1]) not in result.stdout
    assert "the 3 newest of 5 tasks" in result.stdout
    for column in ("id", "type", "priority", "status", "attempts", "created", "ended", "error"):
        assert column in result.stdout


def test_show_prints_one_line_per_task_with_a_long_error_truncated(
    empty_store: Engine, database_url: str, tmp_path: Path
) -> None:
    seed(empty_store, S.FAILED, error="ZeroDivisionError: " + "x" * 500 + "\nsecond line of the traceback")

    result = manage_db("--database-url", database_url, "show", "1", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "ZeroDivisionError" in line)
    assert "…" in row and "x" * 100 not in row and "second line" not in result.stdout


def test_show_on_an_empty_store_says_so(empty_store: Engine, database_url: str, tmp_path: Path) -> None:
    result = manage_db("--database-url", database_url, "show", "10", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "no tasks" in result.stdout


# clear -----------------------------------------------------------------------------------


def test_clear_removes_exactly_the_n_oldest_finished_tasks(empty_store: Engine, database_url: str, tmp_path: Path) -> None:
    ids = seed(empty_store, S.PENDING, S.COMPLETED, S.RUNNING, S.FAILED, S.CANCELLED, S.RETRYING, S.COMPLETED)

    result = manage_db("--database-url", database_url, "clear", "3", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert remaining_ids(empty_store) == {ids[0], ids[2], ids[5], ids[6]}
    assert "removed 3 finished tasks" in result.stdout
    assert "1 finished and 3 unfinished kept" in result.stdout


def test_clear_never_removes_an_unfinished_task(empty_store: Engine, database_url: str, tmp_path: Path) -> None:
    ids = seed(empty_store, *UNFINISHED)

    result = manage_db("--database-url", database_url, "clear", "100", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert remaining_ids(empty_store) == set(ids)
    assert "removed 0 finished tasks" in result.stdout


def test_clear_with_fewer_finished_tasks_than_n_removes_every_finished_one(
    empty_store: Engine, database_url: str, tmp_path: Path
) -> None:
    ids = seed(empty_store, S.COMPLETED, S.PENDING, S.FAILED)

    result = manage_db("--database-url", database_url, "clear", "5", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert remaining_ids(empty_store) == {ids[1]}
    assert "removed 2 finished tasks" in result.stdout
    assert "asked for 5" in result.stdout


def test_clear_keeps_a_failed_task_requeued_while_the_delete_waits_for_it(
    backend: str, empty_store: Engine, database_url: str, tmp_path: Path
) -> None:
    """Given a failed task an operator is requeueing (row locked, not yet committed),
    when clear runs and has to wait for that row, then the requeue commits:
    clear deletes the other finished task and keeps the now-pending one."""
    if backend != "postgresql":
        pytest.skip("SQLite runs one writer at a time: the DELETE never sees a row change under it")
    requeued, completed = seed(empty_store, S.FAILED, S.COMPLETED)

    with empty_store.connect() as operator:
        requeue = operator.begin()
        # The status write phase5_scaling.transitions.mark_requeued makes, held open to stage the race.
        operator.execute(update(Task).where(Task.id == requeued).values(status=S.PENDING.value))  # type: ignore[arg-type]
        clear = subprocess.Popen(
            [sys.executable, "-m", "tasklab_cli.manage_db", "--database-url", database_url, "clear", "10"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        )  # fmt: skip

        def delete_is_waiting_for_the_row() -> bool:
            with empty_store.connect() as observer:
                waiting: int = observer.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock' AND query ILIKE 'DELETE FROM task%'"
                    )
                ).scalar_one()
            return waiting > 0

        wait_for(delete_is_waiting_for_the_row, message="clear to wait for the row being requeued")
        requeue.commit()
    stdout, stderr = clear.communicate(timeout=30)

    assert clear.returncode == 0, stderr
    assert remaining_ids(empty_store) == {requeued}
    assert completed not in remaining_ids(empty_store)
    assert "removed 1 finished task " in stdout


# init ------------------------------------------------------------------------------------


def test_init_creates_the_task_table_on_a_fresh_database(fresh_database_url: str, tmp_path: Path) -> None:
    result = manage_db("--database-url", fresh_database_url, "init", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "created table 'task'" in result.stdout
    assert manage_db("--database-url", fresh_database_url, "show", "5", cwd=tmp_path).returncode == 0


def test_init_on_an_old_table_builds_the_stats_aggregates_from_its_tasks_then_has_nothing_to_do(
    empty_store: Engine, database_url: str, tmp_path: Path
) -> None:
    ids = seed(empty_store, S.PENDING, S.COMPLETED)
    drop_stats_triggers(empty_store)  # a store from before the aggregates: its tasks, no triggers

    first = manage_db("--database-url", database_url, "init", cwd=tmp_path)
    again = manage_db("--database-url", database_url, "init", cwd=tmp_path)

    assert first.returncode == 0, first.stderr
    assert "already exists" in first.stdout and "built the /stats aggregates" in first.stdout
    with empty_store.connect() as connection:
        assert aggregates.status_counts(connection) == {"pending": 1, "completed": 1}
    assert again.returncode == 0, again.stderr
    assert "already exists" in again.stdout and "nothing to do" in again.stdout
    assert remaining_ids(empty_store) == set(ids)


def drop_stats_triggers(engine: Engine) -> None:
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"DROP TRIGGER IF EXISTS {aggregates.TRIGGER_NAME} ON task"))
        else:
            for suffix in ("insert", "update", "delete"):
                connection.execute(text(f"DROP TRIGGER IF EXISTS {aggregates.TRIGGER_NAME}_{suffix}"))


def test_show_before_init_exits_1_and_says_to_run_init(fresh_database_url: str, tmp_path: Path) -> None:
    result = manage_db("--database-url", fresh_database_url, "show", "5", cwd=tmp_path)

    assert result.returncode == 1
    assert "init" in result.stderr and "Traceback" not in result.stderr


# the database URL ------------------------------------------------------------------------


def test_database_url_comes_from_the_environment(empty_store: Engine, database_url: str, tmp_path: Path) -> None:
    ids = seed(empty_store, S.COMPLETED)

    result = manage_db("show", "1", cwd=tmp_path, env={"DATABASE_URL": database_url})

    assert result.returncode == 0, result.stderr
    assert str(ids[0]) in result.stdout


def test_database_url_option_overrides_the_environment(empty_store: Engine, database_url: str, tmp_path: Path) -> None:
    ids = seed(empty_store, S.COMPLETED)
    elsewhere = f"sqlite:///{tmp_path / 'not-this-one.db'}"

    result = manage_db("show", "1", "--database-url", database_url, cwd=tmp_path, env={"DATABASE_URL": elsewhere})

    assert result.returncode == 0, result.stderr
    assert str(ids[0]) in result.stdout
    assert not (tmp_path / "not-this-one.db").exists()


# refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        ["clear", "0"],
        ["clear", "-3"],
        ["clear", "two"],
        ["clear", "1.5"],
        ["clear", str(10**30)],
        ["clear"],
        ["show", "0"],
        ["show", str(10**30)],
        ["show"],
        ["purge", "3"],
        [],
    ],
    ids=lambda arguments: " ".join(arguments) or "no command",
)
def test_bad_arguments_exit_2_with_usage_and_delete_nothing(
    arguments: list[str], empty_store: Engine, database_url: str, tmp_path: Path
) -> None:
    ids = seed(empty_store, S.COMPLETED, S.FAILED)

    result = manage_db("--database-url", database_url, *arguments, cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.startswith("usage: python -m tasklab_cli.manage_db")
    assert result.stdout == ""
    assert remaining_ids(empty_store) == set(ids)


def test_a_url_that_is_not_a_database_exits_2(tmp_path: Path) -> None:
    result = manage_db("--database-url", "not-a-url", "show", "1", cwd=tmp_path)

    assert result.returncode == 2
    assert "usage:" in result.stderr and "not a database URL" in result.stderr


def test_unreachable_postgresql_exits_1_with_one_line_and_no_password(tmp_path: Path) -> None:
    url = f"postgresql://postgres:s3cret@127.0.0.1:{free_port()}/test"  # nothing listens there

    result = manage_db("--database-url", url, "show", "5", cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot use the database")
    assert result.stderr.count("\n") == 1 and "s3cret" not in result.stderr


def test_sqlite_file_that_cannot_be_opened_exits_1_with_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-directory' / 'tasks.db'}"

    result = manage_db("--database-url", url, "init", cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr.startswith("error:") and result.stderr.count("\n") == 1


def test_show_does_not_create_a_missing_sqlite_file(tmp_path: Path) -> None:
    result = manage_db("--database-url", f"sqlite:///{tmp_path / 'typo.db'}", "show", "5", cwd=tmp_path)

    assert result.returncode == 1
    assert "init" in result.stderr
    assert not (tmp_path / "typo.db").exists()


def test_help_explains_every_command_with_examples(tmp_path: Path) -> None:
    result = manage_db("--help", cwd=tmp_path)

    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m tasklab_cli.manage_db")
    for example in ("manage_db init", "manage_db show 20", "manage_db clear 1000", "--database-url"):
        assert example in result.stdout
