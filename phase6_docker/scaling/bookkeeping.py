"""RQ's per-job bookkeeping in fewer round trips: what lets a pool process keep up with Celery.

A pool process runs a no-op job in about a millisecond of Python; RQ's stock loop then talked
to Redis about twenty times for it (``redis-cli monitor``, 2026-11-26): one ``LPOP`` per
empty priority level, the job's hash, two preparation transactions, a ``WATCH``/``SMEMBERS``/
``HGET`` check for dependent jobs, two reads of the job's execution records before deleting
them, the finishing transaction, the worker's state, and a suspension check. Each round trip is
a system call each way, a parse, and a wake-up of Redis on a core the workers share.

Nothing here changes what RQ stores or what a job means; each piece sends the same writes in
fewer trips, or skips a read whose answer tasklab already knows:

* :class:`PriorityQueues` pops from the first non-empty level *and* reads the job's hash with
  one script call, where RQ sent one ``LPOP`` per empty level (or a ``BLPOP``), then an
  ``HGETALL``;
* :class:`OneTripBookkeeping` writes the execution record and marks the job started in one
  transaction (RQ sent two), and finishes a successful job in one transaction without reading
  anything first (RQ read its dependents and its execution records);
* the attempt's lease (:class:`~recovery.leases.LeaseKeeper`) is set in that starting
  transaction and deleted in the finishing one, rather than in round trips of their own;
* the transaction that finishes a job also pops the next one (*prefetch*), so the pop costs
  no round trip of its own while jobs wait;
* it checks ``rq suspend`` at most once a second rather than before every job.

Two round trips per job are left while jobs wait: the start, and the finish with the next pop.

A job that needs more than this path knows (a result kept in Redis, a repeat, a group, a rate
limit) goes through RQ's own code, unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Iterable
from typing import Any

from redis import Redis
from redis.commands.core import Script
from redis.exceptions import RedisError
from rq import Queue
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.results import Result
from rq.utils import as_text
from rq.worker import BaseWorker, WorkerStatus

from ..monitoring.logs import RQ_DEQUEUE_MESSAGE
from ..recovery.leases import LeaseKeeper, attempt_holder

#: ``rq suspend`` is noticed within this; RQ asked Redis before every job.
SUSPENSION_CHECK_INTERVAL_SECONDS = 1.0
#: RQ's "Job OK" line (``Worker NAME: QUEUE: Job OK (ID)``); its third argument is the words.
RQ_JOB_OK_MESSAGE = "Worker %s: %s: %s (%s)"


#: Pop the first job id from the first non-empty list in ``KEYS`` (highest priority first) and
#: return it with its queue's key and its job hash, in one step. ``ARGV[1]`` is RQ's job key
#: prefix. A job hash read here, in the same atomic step as the pop, cannot be one a later
#: enqueue (the same task id) has replaced in between.
POP_AND_FETCH = """
for _, queue_key in ipairs(KEYS) do
    local job_id = redis.call('LPOP', queue_key)
    if job_id then
        return {queue_key, job_id, redis.call('HGETALL', ARGV[1] .. job_id)}
    end
end
return false
"""


@functools.cache
def pop_and_fetch_script(connection: Redis) -> Script:
    """:data:`POP_AND_FETCH`, registered once per connection (its SHA is computed once, not per job)."""
    return connection.register_script(POP_AND_FETCH)


class PriorityQueues(Queue):
    """RQ's queue, taking a waiting job and its hash in one round trip instead of two or more."""

    @classmethod
    def dequeue_any(
        cls,
        queues: Iterable[Queue],
        timeout: int | None,
        connection: Redis,
        job_class: type[Job] | None = None,
        serializer: Any = None,
        death_penalty_class: Any = None,
    ) -> tuple[Job, Queue] | None:
        """The first waiting job of the highest non-empty level, with one script call.

        RQ pops with one ``LPOP`` per level until one answers (``--burst``) or one blocking
        ``BLPOP``, then reads the job's hash: two to six round trips. While jobs wait, the
        script does both in one. Only when every level is empty does RQ's own blocking pop
        run, to wait for the next job without polling.
        """
        queues = list(queues)
        script = pop_and_fetch_script(connection)
        while popped := script(keys=[queue.key for queue in queues], args=[Job.redis_job_namespace_prefix]):
            taken = cls.popped_job(popped, queues, connection, job_class, serializer, death_penalty_class)
            if taken is None:  # the job was deleted while it waited: RQ skips it too
                continue
            return taken
        if timeout is None:  # --burst: the levels are empty
            return None
        return super().dequeue_any(queues, timeout, connection, job_class, serializer, death_penalty_class)

    @classmethod
    def popped_job(
        cls,
        popped: list[Any],
        queues: Iterable[Queue],
        connection: Redis,
        job_class: type[Job] | None = None,
        serializer: Any = None,
        death_penalty_class: Any = None,
    ) -> tuple[Job, Queue] | None:
        """The job and queue of one :data:`POP_AND_FETCH` answer; ``None`` if its hash was gone."""
        queue_key, job_id, fields = (as_text(popped[0]), as_text(popped[1]), popped[2])
        if not fields:
            return None
        job = (job_class or Job)(job_id, connection=connection, serializer=serializer)
        job.restore(dict(zip(fields[::2], fields[1::2], strict=True)) if isinstance(fields, list) else fields)
        # The worker's own queue object, not a new one per job as RQ builds (each one
        # checks its serializer against a typing Protocol: slow, for the same answer).
        origin = next((queue for queue in queues if queue.key == queue_key), None)
        if origin is None:
            origin = cls.from_queue_key(queue_key, connection, job_class, serializer, death_penalty_class)
        return job, origin


class OneTripBookkeeping(BaseWorker):
    """RQ's start-of-job and end-of-job writes, each sent as one transaction.

    Mixed into the pool's ``SimpleWorker`` (before it in the class's bases). Every method keeps
    the writes RQ makes, so ``rq info``, the registries and the stop-job command see what
    they always saw.
    """

    suspension_checked_at: float = float("-inf")
    #: The leases of this process's attempts (:func:`scaling.jobs.lease_keeper`): an
    #: ended one is deleted in the job's finishing transaction.
    leases: LeaseKeeper | None = None
    #: The next job, popped by the transaction that finished the previous one; taken by the
    #: next dequeue, or pushed back to the front of its queue if this worker stops first.
    prefetched: tuple[Job, Queue] | None = None

    def ended_leases(self) -> list[str]:
        return self.leases.take_released() if self.leases is not None else []

    def prepare_execution(self, job: Job) -> Execution:
        """RQ's execution record *and* its "job started" writes, in one ``MULTI … EXEC``.

        RQ sends the record (execution hash, started registry, worker's index, state ``busy``)
        in one transaction and, a moment later in the same process, the job's ``started``
        status and heartbeats in a second. Sent together, a reader never sees a job in the
        started registry that is still ``queued``, and one round trip is saved. The attempt's
        lease goes in the same transaction (a second round trip saved): from the moment the
        job is started in Redis, its lease says a live process has it.
        """
        with self.connection.pipeline() as pipeline:
            heartbeat_ttl = self.get_heartbeat_ttl(job)
            execution = Execution.create(job, heartbeat_ttl, pipeline=pipeline, worker_name=self.name)
            self.executions[execution.id] = execution
            self.set_state(WorkerStatus.BUSY, pipeline=pipeline)
            self.heartbeat(heartbeat_ttl, pipeline=pipeline)
            job.prepare_for_execution(self.name, pipeline=pipeline)  # stamps the job's heartbeat too
            pipeline.persist(job.key)
            if self.leases is not None:  # held by run_attempt under the same holder: no SET of its own
                self.leases.set_in(pipeline, job.id, holder=attempt_holder(self.name))
            pipeline.execute()
        return execution

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        """Already done by :meth:`prepare_execution`, in the same transaction as the record."""
        if remove_from_intermediate_queue:  # a one-queue worker; the pool listens to five
            super().prepare_job_execution(job, remove_from_intermediate_queue)

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry: StartedJobRegistry, execution: Execution) -> None:
        """Finish a successful job in one transaction, with no reads before it.

        RQ first reads the job's dependents (``WATCH``, ``SMEMBERS``, the status) to enqueue
        jobs waiting on this one, and its execution records (twice) to delete them. tasklab
        never enqueues a job that depends on another, and the only execution record a
        finishing job has is the one this process made, so both reads are skipped. The writes
        are RQ's: the worker's counters, the started registry, the execution record, the job
        itself (its result lives in the database, ``result_ttl=0``), and the worker's state.

        The same transaction pops the next job (:meth:`dequeue_job_and_maintain_ttl` takes it):
        a round trip of its own saved per job while jobs wait. The job spends no longer out of
        any queue than between RQ's own pop and start, and a worker that stops first puts it
        back (:meth:`teardown`).
        """
        ended_leases = self.ended_leases()
        if not finishes_in_one_trip(job, self.default_result_ttl):
            super().handle_job_success(job, queue, started_job_registry, execution)
            if self.leases is not None:
                self.leases.release(ended_leases)
            return
        assert job.started_at is not None and job.ended_at is not None, "perform_job stamps both"
        prefetch = not self._stop_requested  # a worker that is stopping takes no next job
        with self.connection.pipeline() as pipeline:
            self.increment_successful_job_count(pipeline=pipeline)
            self.increment_total_working_time(job.ended_at - job.started_at, pipeline)
            self.cleanup_execution(job, pipeline=pipeline, execution=execution)
            pipeline.delete(job.key, job.dependents_key, job.dependencies_key, Result.get_key(job.id), job.execution_registry.key)
            if ended_leases:  # the attempt's lease, held until its outcome was committed
                pipeline.delete(*ended_leases)
            self.set_state(WorkerStatus.IDLE, pipeline=pipeline)  # RQ sends it on its own next
            if prefetch:  # the next job's pop, in this trip rather than one of its own
                keys = [queue.key for queue in self._ordered_queues]
                pipeline.evalsha(pop_and_fetch_script(self.connection).sha, len(keys), *keys, Job.redis_job_namespace_prefix)
            # Not raise_on_error: a pop refused (NOSCRIPT after Redis restarted) must not fail
            # the job whose writes went through; the next dequeue loads the script again.
            replies = pipeline.execute(raise_on_error=False)
        job._status = JobStatus.FINISHED  # what RQ's own path leaves on the object
        if prefetch:
            *replies, popped = replies
            if popped and not isinstance(popped, Exception):
                self.prefetched = PriorityQueues.popped_job(
                    popped, self._ordered_queues, self.connection, self.job_class, self.serializer, self.death_penalty_class
                )
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> tuple[Job, Queue] | None:
        """The job popped with the last one's finish, if any; otherwise RQ's dequeue (one script call).

        RQ's dequeue around its pop only sets state "idle" (already set, in the finishing
        transaction) and heartbeats (at most once a second, :meth:`heartbeat`).
        """
        prefetched, self.prefetched = self.prefetched, None
        if prefetched is None:
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        self.heartbeat()
        self.reorder_queues(reference_queue=prefetched[1])
        prefetched[0].redis_server_version = self.get_redis_server_version()  # type: ignore[no-untyped-call]  # unannotated in RQ
        return prefetched

    def give_back_prefetched(self) -> None:
        """Put a popped job that will not run here back at the front of its queue, where it was."""
        prefetched, self.prefetched = self.prefetched, None
        if prefetched is not None:
            job, queue = prefetched
            self.connection.lpush(queue.key, job.id)

    def teardown(self) -> None:
        """Before RQ unregisters the worker: a job popped for a next turn that never came goes back.

        Without it, a stopped worker's prefetched job would be in no queue until the reconciler
        noticed, a grace period later. (A SIGKILL cannot be helped; the reconciler covers it.)
        """
        with contextlib.suppress(RedisError):  # Redis is down: the reconciler re-enqueues it
            self.give_back_prefetched()
        super().teardown()  # type: ignore[no-untyped-call]  # unannotated in RQ

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: StartedJobRegistry | None = None,
        exc_string: str = "",
        execution: Execution | None = None,
    ) -> None:
        """RQ's failure path (retry, dead letter, stop), then the attempt's lease is deleted."""
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)
        if self.leases is not None:
            self.leases.release(self.ended_leases())

    def check_for_suspension(self, burst: bool) -> None:
        """RQ's ``rq suspend`` check (and the heartbeat it carries), at most once a second."""
        checked_at = time.monotonic()
        if checked_at - self.suspension_checked_at < SUSPENSION_CHECK_INTERVAL_SECONDS:
            return
        self.suspension_checked_at = checked_at
        # RQ's check may wait here for `rq resume` for a long time: no job is held meanwhile.
        # (Once a second a prefetched job goes back and is popped again: one round trip more.)
        self.give_back_prefetched()
        super().check_for_suspension(burst)


def finishes_in_one_trip(job: Job, default_result_ttl: int) -> bool:
    """Whether :meth:`OneTripBookkeeping.handle_job_success` knows every write this job needs.

    Only RQ's own path keeps a result in Redis, schedules a repeat, updates a group or frees a
    rate-limit slot; a job asking for any of these takes it.
    """
    return (
        job.get_result_ttl(default_result_ttl) == 0
        and not job.repeats_left
        and not job.group_id
        and not job.has_rate_limit
        and job.success_callback is None
    )


class WithoutPerJobLines:
    """RQ's worker logger, minus the two lines it logs for every job: the dequeue and "Job OK".

    Both say less than the attempt's own lines (``attempt started`` names the task, its type,
    queue and attempt; ``attempt ended`` its outcome and duration). A ``logging.Filter`` on RQ's
    logger would drop them too, but only after ``logging`` has built each one's record: finding
    the caller's frame alone cost 2 % of a pool process's time, for lines never written. Set as
    the worker's ``log``, this drops them before. Every other line of RQ's goes through as is.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def info(self, msg: str, *args: object, **kwargs: Any) -> None:
        if msg == RQ_DEQUEUE_MESSAGE or (msg == RQ_JOB_OK_MESSAGE and len(args) == 4 and "Job OK" in str(args[2])):
            return
        self._logger.info(msg, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        """``debug``, ``warning``, ``error``, ``exception`` and the rest: RQ's logger's own."""
        return getattr(self._logger, name)
