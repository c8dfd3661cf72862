"""The supervised pool: replaced when a process dies, stopped without losing or stranding a task.

Everything is real: the supervisor and its pool processes are OS processes, signals are real
signals, and every wait is a bounded poll on the task store, the process table or Redis.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import time

import httpx
import psutil
import pytest
import redis
from rq import Worker
from sqlalchemy import text
from sqlalchemy.engine import Engine

from phase5_scaling.scaling.pool import Slot, pool_process_command, restart_delay
from phase5_scaling.scaling.pool_process import interpreter_options, optimized_bytecode_on_disk
from shared.redis_server import free_port
from tasklab_cli.processes import ManagedProcess
from tests.phase5.conftest import PoolFactory, pool_processes
from tests.support import sample, scrape, submit, wait_for, wait_for_status

#: About 1.5 s of real CPU work: long enough to be caught in the middle.
SLOW = ("compute", {"n": 50_000_000}, 1_249_999_975_000_000)
#: ``ai_summarization`` simulates 5 s of work; at this scale it sleeps about 2 s.
TWO_SECOND_TASKS = {"TASK_TIME_SCALE": "0.4"}
#: … and at this one about 20 s: still running whenever the test acts.
LONG_TASKS = {"TASK_TIME_SCALE": "4"}
SUMMARY = ("ai_summarization", {"text": "Pools replace the processes that die. " * 4})

#: The promise: a dead pool process has a successor this soon.
REPLACED_WITHIN_SECONDS = 1.0
#: A short grace for the stop tests, and what the supervisor may add to it (repairs, threads).
GRACE_SECONDS = 1.0
EXIT_MARGIN_SECONDS = 1.5

STATUSES = ("pending", "running", "retrying", "completed", "failed", "cancelled")


def counts(client: httpx.Client) -> dict[str, int]:
    return {s: client.get("/tasks", params={"status": s, "limit": 1}).json()["total"] for s in STATUSES}


def all_completed(client: httpx.Client, total: int) -> bool:
    return counts(client)["completed"] == total


def registered(redis_client: redis.Redis, pool_name: str) -> set[str]:
    """The pool's processes that registered in RQ: they are listening to the queues."""
    return {worker.name for worker in Worker.all(connection=redis_client) if worker.name.startswith(f"{pool_name}-")}


def wait_until_listening(redis_client: redis.Redis, pool_name: str, processes: int) -> None:
    wait_for(lambda: len(registered(redis_client, pool_name)) == processes, timeout=30, message=f"{processes} processes in RQ")


def warm_shutdown_requested(redis_client: redis.Redis, worker_name: str) -> bool:
    """RQ writes this field when a busy worker is asked to stop: it finishes its job first."""
    return bool(redis_client.hexists(f"{Worker.redis_worker_namespace_prefix}{worker_name}", "shutdown_requested_date"))


def exit_code_within(pool: ManagedProcess, seconds: float) -> tuple[int, float]:
    """Wait for the supervisor to exit; its exit code and how long it took (fails after ``seconds``)."""
    began = time.monotonic()
    try:
        code = pool.process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the pool was still running {seconds} s later:\n{pool.log_tail()}")
    return code, time.monotonic() - began


def workers_of_tasks(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return {row[0] for row in connection.execute(text("SELECT DISTINCT worker FROM task"))}


# ---------------------------------------------------------------------------------------------
# Supervision


@pytest.mark.alone  # a timing bound
def test_a_killed_pool_process_is_replaced_within_a_second_and_its_task_completes(
    client: httpx.Client, pools: PoolFactory
) -> None:
    pool = pools("--processes", "2", "--name", "phoenix")
    task_type, payload, expected = SLOW
    task = submit(client, task_type, payload)
    running = wait_for_status(client, task["id"], ["running"], timeout=30)
    victim = pool_processes(pool)[running["worker"]]

    os.kill(victim, signal.SIGKILL)

    successor = wait_for(
        lambda: pool_processes(pool).get(running["worker"], victim) != victim,
        timeout=REPLACED_WITHIN_SECONDS,
        interval=0.02,
        message=f"a new {running['worker']}",
    )
    assert successor
    done = wait_for_status(client, task["id"], timeout=30)
    assert (done["status"], done["attempts"], done["result"]) == ("completed", 2, expected)
    assert len(pool_processes(pool)) == 2


def test_a_process_that_keeps_dying_at_start_is_restarted_later_and_later() -> None:
    """The first death is replaced at once; each quick death after it doubles the wait, up to the cap."""
    waits = [restart_delay(deaths, cap_seconds=3.0) for deaths in range(1, 7)]

    assert waits == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0]


def test_three_processes_share_300_tasks(
    client: httpx.Client, pools: PoolFactory, redis_client: redis.Redis, db_engine: Engine
) -> None:
    """Load balancing: while tasks wait, every process takes some."""
    pools("--processes", "3", "--name", "trio")
    wait_until_listening(redis_client, "trio", 3)

    for _ in range(300):
        submit(client, "noop")

    wait_for(lambda: all_completed(client, 300), timeout=60, message="300 tasks completed")
    assert workers_of_tasks(db_engine) == {"trio-1", "trio-2", "trio-3"}


def test_the_pool_metrics_port_exports_every_process_count(
    client: httpx.Client, pools: PoolFactory, redis_client: redis.Redis
) -> None:
    """One endpoint for the pool: the processes' counts, summed, equal the database, even after one is killed."""
    port = free_port()
    pool = pools("--processes", "2", "--name", "counted", "--metrics-port", str(port))
    wait_until_listening(redis_client, "counted", 2)
    for _ in range(40):
        submit(client, "noop")
    wait_for(lambda: all_completed(client, 40), timeout=30, message="40 tasks completed")
    url = f"http://127.0.0.1:{port}/metrics"

    assert sample(scrape(url), "tasklab_tasks_finished_total", outcome="completed") == 40

    os.kill(next(iter(pool_processes(pool).values())), signal.SIGKILL)  # its files stay, and are still exported
    wait_for(lambda: len(pool_processes(pool)) == 2, timeout=5, message="the replacement")
    assert sample(scrape(url), "tasklab_tasks_finished_total", outcome="completed") == 40


def test_retries_are_scheduled_by_the_supervisor_and_no_process_forks_one(client: httpx.Client, pools: PoolFactory) -> None:
    """RQ's scheduler runs once, in the supervisor: no pool process forks a scheduler of its own.

    Without a reconciler, only RQ's scheduler can move the retry from its backoff wait to the queue.
    """
    pool = pools("--processes", "2", "--no-reconciler")
    task = submit(client, "flaky", {"fail_times": 1})

    done = wait_for_status(client, task["id"], timeout=30)

    assert (done["status"], done["attempts"]) == ("completed", 2)
    processes = psutil.Process(pool.pid).children(recursive=True)
    assert len(processes) == 2, [process.cmdline() for process in processes]


def test_burst_exits_0_once_the_queues_are_empty(client: httpx.Client, pools: PoolFactory) -> None:
    tasks = [submit(client, "noop", priority=priority) for priority in (1, 3, 5) * 5]

    pool = pools("--processes", "2", "--burst")

    code, _ = exit_code_within(pool, 30)
    assert code == 0, pool.log_tail()
    assert counts(client)["completed"] == len(tasks)


# ---------------------------------------------------------------------------------------------
# Stopping


@pytest.mark.alone  # a timing bound
def test_sigterm_lets_a_running_attempt_finish_within_the_grace(client: httpx.Client, pools: PoolFactory) -> None:
    pool = pools("--processes", "1", "--grace-seconds", "20", extra_env=TWO_SECOND_TASKS)
    task = submit(client, *SUMMARY)
    wait_for_status(client, task["id"], ["running"], timeout=30)

    os.kill(pool.pid, signal.SIGTERM)

    code, took = exit_code_within(pool, 20)
    assert code == 0
    done = client.get(f"/tasks/{task['id']}").json()
    assert (done["status"], done["attempts"]) == ("completed", 1)
    assert took < 10, "it waited for the attempt, not for the whole grace"


def test_sigterm_during_100_tasks_exits_within_the_grace_and_a_restart_completes_them(
    client: httpx.Client, pools: PoolFactory
) -> None:
    """Attempts still running when the grace ends are killed, and moved on: nothing stays `running`."""
    pool = pools("--processes", "2", "--name", "drained", "--grace-seconds", str(GRACE_SECONDS), extra_env=TWO_SECOND_TASKS)
    tasks = [submit(client, *SUMMARY) for _ in range(100)]
    wait_for(lambda: counts(client)["running"] == 2, timeout=30, message="both processes busy")

    pool.signal_group(signal.SIGTERM)  # what `kill`, a process manager or ManagedProcess.stop() send

    code, took = exit_code_within(pool, GRACE_SECONDS + EXIT_MARGIN_SECONDS)
    assert code == 0
    after = counts(client)
    assert after["running"] == 0, after
    assert after["completed"] + after["retrying"] + after["pending"] == len(tasks), after

    pools("--processes", "2", "--name", "drained")  # time scale 0: what is left takes no time
    wait_for(lambda: all_completed(client, len(tasks)), timeout=60, message="every task completed after the restart")


def test_a_second_signal_stops_at_once(client: httpx.Client, pools: PoolFactory, redis_client: redis.Redis) -> None:
    pool = pools("--processes", "1", "--name", "impatient", "--grace-seconds", "60", extra_env=LONG_TASKS)
    task = submit(client, *SUMMARY)
    wait_for_status(client, task["id"], ["running"], timeout=30)

    os.kill(pool.pid, signal.SIGTERM)
    # RQ records the warm shutdown it was asked for: the first signal reached the pool process.
    wait_for(lambda: warm_shutdown_requested(redis_client, "impatient-1"), timeout=5, message="a warm shutdown")
    assert pool.alive(), "one signal waits for the running attempt"
    os.kill(pool.pid, signal.SIGTERM)

    code, _ = exit_code_within(pool, EXIT_MARGIN_SECONDS)
    assert code == 0
    stopped = client.get(f"/tasks/{task['id']}").json()
    assert (stopped["status"], stopped["error"]) == ("retrying", "WorkerStopped: pool stopped during attempt 1")


def modules_a_pool_process_loads(interpreter: list[str]) -> set[str]:
    """Every module the pool process's entry point imports, asked only for --help: no job runs."""
    command = pool_process_command(Slot("lean-1"), argparse.Namespace(log_level="INFO", burst=False), interpreter)
    module = command[command.index("-m") + 1]
    probe = "\n".join(
        [
            "import runpy, sys",
            "sys.argv[1:] = ['--help']",
            "try:",
            f"    runpy.run_module({module!r}, run_name='__main__')",
            "except SystemExit:",
            "    pass",
            "print('LOADED', *(name for name, module in sys.modules.items() if module is not None))",
            "print('OPTIMIZE', sys.flags.optimize)",
        ]
    )
    started = subprocess.run([command[0], *interpreter, "-c", probe], capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr[-2000:]
    loaded_line, _, optimize = started.stdout.rpartition("LOADED")[2].partition("OPTIMIZE")
    assert int(optimize) == len(interpreter[0]) - 1 if interpreter else int(optimize) == 0
    return set(loaded_line.split())


def test_a_pool_process_never_imports_rich_or_greenlet() -> None:
    """structlog imports rich and greenlet whenever it can; a pool process is one of N, so it declines both."""
    loaded = modules_a_pool_process_loads([])
    assert {"structlog", "redis", "rq", "sqlmodel"} <= loaded
    assert not {"rich", "pygments", "greenlet"} & loaded


def test_a_sqlite_pool_process_does_not_load_the_postgresql_dialect() -> None:
    """The partial index's PostgreSQL option is attached when the index is created, not at import."""
    assert "sqlalchemy.dialects.postgresql" not in modules_a_pool_process_loads([])


def test_pool_processes_run_python_oo_when_its_bytecode_is_installed() -> None:
    """``make install`` compiles the ``-OO`` bytecode; the supervisor then starts its processes with it."""
    assert optimized_bytecode_on_disk(2), "make install writes the .opt-2.pyc files"
    assert interpreter_options(2) == ["-OO"]
    assert interpreter_options(0) == []
    command = pool_process_command(Slot("lean-1"), argparse.Namespace(log_level="INFO", burst=False), ["-OO"])
    assert command[1:4] == ["-OO", "-m", "phase5_scaling.scaling.pool_process"]
    assert {"structlog", "redis", "rq", "sqlmodel"} <= modules_a_pool_process_loads(["-OO"])


def test_without_optimized_bytecode_pool_processes_start_without_o(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiling every module from source at each start would cost more than -OO saves."""
    monkeypatch.setattr(importlib.util, "cache_from_source", lambda path, optimization=None: "/nonexistent.pyc")
    assert interpreter_options(2) == []
