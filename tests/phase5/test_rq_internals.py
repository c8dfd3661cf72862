"""The RQ internals phase 5 relies on are still RQ's: an upgrade that changes them fails here, loudly.

Phase 5's pool overrides methods of RQ's worker that RQ does not document as an extension point
(``prepare_execution``, ``handle_job_success``, ``dequeue_job_and_maintain_ttl`` …), and its
scripts read and write RQ's Redis keys directly (a job's hash, a queue's list). ``pyproject.toml``
pins RQ to the minor version this was written against; these tests say what to re-check when
that pin moves: every overridden method still exists in RQ with the same parameters, and every
key and hash field we spell out is the one RQ uses.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from phase5_scaling.recovery.worker import TaskWorker
from phase5_scaling.scaling.bookkeeping import OneTripBookkeeping, PriorityQueues
from phase5_scaling.scaling.jobs import QUEUE_NAMES
from phase5_scaling.scaling.pool import PoolWorker
from phase5_scaling.scaling.priorities import JOB_KEY_PREFIX
from phase5_scaling.worker_pubsub import PromptPubSubWorker
from phase6_docker.ci.scenario import QUEUES as COMPOSE_SCENARIO_QUEUES
from tests.support import text

#: Our classes that subclass RQ's and override some of its methods.
OVERRIDING_CLASSES: list[type] = [PoolWorker, OneTripBookkeeping, PriorityQueues, TaskWorker, PromptPubSubWorker]


def rq_method_overridden(cls: type, name: str) -> type | None:
    """The RQ class in ``cls``'s bases whose method ``name`` our ``cls`` replaces, if any."""
    return next((base for base in cls.__mro__[1:] if base.__module__.startswith("rq.") and name in vars(base)), None)


def overrides() -> list[tuple[type, str, type]]:
    found = []
    for cls in OVERRIDING_CLASSES:
        for name, attribute in vars(cls).items():
            if name.startswith("__") or not callable(getattr(cls, name)) or isinstance(attribute, property):
                continue
            base = rq_method_overridden(cls, name)
            if base is not None:
                found.append((cls, name, base))
    return found


OVERRIDES = overrides()


def shape(function: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    """Each parameter's name, kind and default: what a caller inside RQ depends on."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def test_the_pool_overrides_the_methods_it_is_known_to_override() -> None:
    """Guards the test below against passing on an empty list."""
    names = {name for _, name, _ in OVERRIDES}

    assert {"dequeue_job_and_maintain_ttl", "handle_job_success", "prepare_execution", "execute_job", "subscribe"} <= names


@pytest.mark.parametrize(("cls", "name", "base"), OVERRIDES, ids=[f"{cls.__name__}.{name}" for cls, name, _ in OVERRIDES])
def test_each_overridden_method_has_the_parameters_of_rqs_own(cls: type, name: str, base: type) -> None:
    ours, theirs = getattr(cls, name), getattr(base, name)

    assert shape(ours) == shape(theirs), f"RQ changed {base.__name__}.{name}{inspect.signature(theirs)}: re-check our override"


#: What phase5_scaling/worker_pubsub.py's subscription reads and sets on RQ's worker.
SUBSCRIPTION_ATTRIBUTES = ["pubsub", "pubsub_thread", "pubsub_channel_name", "handle_payload", "_pubsub_exception_handler"]


@pytest.mark.parametrize("attribute", SUBSCRIPTION_ATTRIBUTES)
def test_the_attributes_our_subscription_uses_are_rqs(attribute: str, redis_client: redis.Redis) -> None:
    worker = TaskWorker([Queue("rq-internals", connection=redis_client)], connection=redis_client)

    assert hasattr(worker, attribute), f"RQ's worker has no {attribute} any more: see phase5_scaling/worker_pubsub.py"


def test_the_job_key_prefix_is_rqs() -> None:
    assert Job.redis_job_namespace_prefix == JOB_KEY_PREFIX
    assert Job("some-id", connection=redis.Redis()).key == f"{JOB_KEY_PREFIX}some-id"


def test_the_compose_scenario_watches_rqs_keys_of_the_five_queues(redis_client: redis.Redis) -> None:
    keys = sorted(Queue(name, connection=redis_client).key for name in QUEUE_NAMES)

    assert sorted(COMPOSE_SCENARIO_QUEUES) == keys


def test_an_enqueued_job_keeps_the_hash_fields_our_scripts_read_and_write(redis_client: redis.Redis) -> None:
    """The pop-and-fetch script rebuilds a job from its hash; aging reads ``enqueued_at`` and sets ``origin``."""
    redis_client.flushdb()
    queue = Queue(QUEUE_NAMES[0], connection=redis_client, serializer=JSONSerializer)
    job = queue.enqueue("builtins.print", "x", job_id="rq-internals-job")

    fields = redis_client.hgetall(f"{JOB_KEY_PREFIX}{job.id}")

    assert {b"origin", b"enqueued_at", b"data", b"status"} <= set(fields)
    assert text(fields[b"origin"]) == QUEUE_NAMES[0]
    assert [text(job_id) for job_id in redis_client.lrange(queue.key, 0, -1)] == [job.id]
