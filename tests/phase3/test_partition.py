"""A worker cut off by the network, not killed: nothing is lost, and it comes back by itself.

One worker runs here, one on another "host" (a network namespace, tests/netns.py) that reaches
Redis and PostgreSQL through the pair of interfaces between them. While tasks run, every packet
between the two hosts is dropped for longer than a task's lease. The worker here takes over the
tasks the cut-off one held (the reconciler sees their leases lapse); when the cut heals, the
cut-off worker's late writes are refused by the compare-and-set, and once the worker here is
stopped, the one that was cut off runs the next tasks alone, without a restart.

PostgreSQL only: a SQLite file on a shared disk cannot be cut off by the network.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy.engine import make_url

from tasklab_cli.processes import ManagedProcess, Phase
from tests.netns import other_host
from tests.phase3.conftest import FAST_RECOVERY, WorkerFactory, task_worker
from tests.support import submit, wait_for

#: Tasks running when the cut starts, and after the heal with the cut-off worker alone.
TASKS_DURING_CUT = 60
TASKS_AFTER_HEAL = 20
#: Each task sleeps 3 s × this: long enough to be caught mid-attempt, short enough for the suite.
TIME_SCALE = "0.05"
#: Longer than the lease (FAST_RECOVERY: 2 s), the reconciler's grace and its interval: the
#: take-over must happen inside the cut (wait_for fails the test otherwise).
CUT_SECONDS = 3 * float(FAST_RECOVERY["TASK_LEASE_SECONDS"])
REFUSED_LINE = "no longer running here"


def text_task(client: httpx.Client) -> str:
    return str(submit(client, "text_processing", {"text": "cut me off"})["id"])


def statuses(client: httpx.Client, ids: list[str]) -> list[dict[str, object]]:
    return [client.get(f"/tasks/{task_id}").json() for task_id in ids]


@pytest.mark.slow  # about 25 s a phase: CI runs it (make test-slow)
@pytest.mark.timeout(240)
def test_a_partitioned_worker_loses_nothing_and_comes_back_by_itself(
    client: httpx.Client,
    workers: WorkerFactory,
    recovery_phase: Phase,
    env: dict[str, str],
    backend: str,
    record_property: Callable[[str, object], None],
) -> None:
    if backend != "postgresql":
        pytest.skip("a SQLite file on a shared disk cannot be cut off by the network (TEST_DATABASE_URL runs it)")
    with other_host() as host:
        database, redis_url = make_url(env["DATABASE_URL"]), make_url(env["REDIS_URL"])
        over_the_pair = {
            **env,
            "TASK_TIME_SCALE": TIME_SCALE,
            "DATABASE_URL": database.set(host=host.host_address, port=host.reach(database.port or 5432)).render_as_string(
                hide_password=False
            ),
            "REDIS_URL": redis_url.set(host=host.host_address, port=host.reach(redis_url.port or 6379)).render_as_string(),
        }
        module = f"{recovery_phase.package}.worker"
        pool = ("--processes", "1") if recovery_phase.has_pool else ()
        far = ManagedProcess("cut-off-worker", host.command(sys.executable, "-m", module, "--name", "far", *pool), over_the_pair)
        try:
            here = workers("--name", "here", extra_env={"TASK_TIME_SCALE": TIME_SCALE})
            far_name = task_worker(recovery_phase, "far")
            ids = [text_task(client) for _ in range(TASKS_DURING_CUT)]

            def far_is_running() -> list[str] | None:
                running = client.get("/tasks", params={"status": "running", "limit": 100}).json()["items"]
                return [t["id"] for t in running if t["worker"] == far_name] or None

            held = wait_for(far_is_running, timeout=30, interval=0.02, message="the far worker in the middle of a task")
            host.cut()
            cut_at = time.monotonic()

            def taken_over() -> bool:
                """Each task the cut-off worker held has been moved on: repaired, or claimed by another worker."""
                return all(t["status"] != "running" or t["worker"] != far_name for t in statuses(client, held))

            wait_for(taken_over, timeout=CUT_SECONDS, interval=0.05, message="the far worker's tasks taken over")
            takeover_seconds = time.monotonic() - cut_at
            time.sleep(max(0.0, CUT_SECONDS - takeover_seconds))  # the cut lasts its whole length
            host.heal()

            wait_for(
                lambda: all(t["status"] == "completed" for t in statuses(client, ids)),
                timeout=60,
                interval=0.2,
                message=f"all {TASKS_DURING_CUT} tasks completed",
            )
            here.stop()
            after = [text_task(client) for _ in range(TASKS_AFTER_HEAL)]
            wait_for(
                lambda: all(t["status"] == "completed" for t in statuses(client, after)),
                timeout=60,
                interval=0.2,
                message="the tasks after the heal completed by the far worker alone",
            )
            done_after = statuses(client, after)
        finally:
            far.stop()
        refused = far.log_tail(200_000).count(REFUSED_LINE)

    every = statuses(client, ids)
    assert [t["status"] for t in every] == ["completed"] * TASKS_DURING_CUT  # each row completed, once
    assert {t["worker"] for t in done_after} == {far_name}  # back at work without a restart
    summary = (
        f"phase {recovery_phase.number}: {TASKS_DURING_CUT} tasks, cut {CUT_SECONDS:.0f} s, "
        f"{len(held)} held by the cut-off worker, taken over in {takeover_seconds:.1f} s, "
        f"{refused} late write(s) refused, {TASKS_AFTER_HEAL}/{TASKS_AFTER_HEAL} done by it alone after the heal"
    )
    record_property("partition", summary)
    print(summary, file=sys.stderr)
