"""A worker's command thread stops at once (``shared.worker_pubsub``), against a real Redis.

The race it closes, made deterministic: the thread reads the reply to the worker's UNSUBSCRIBE
before the worker asks it to stop, and goes back to waiting for a message. With RQ's 60-second
wait that leaves ``unsubscribe()``, and so every worker's exit, stuck for up to a minute.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from rq import Queue, Worker

from phase2_queue.worker_pubsub import PUBSUB_WAIT_SECONDS, PromptPubSubWorker
from shared.redis_server import PrivateRedis
from tests.support import wait_for


class CommandRecordingWorker(PromptPubSubWorker, Worker):
    """The mixin on RQ's worker, noting each command payload it receives instead of acting on it."""

    received: list[dict[str, Any]]

    def handle_payload(self, message: dict[str, Any]) -> None:
        self.received.append(message)


@pytest.fixture
def worker(redis_server: PrivateRedis) -> Iterator[CommandRecordingWorker]:
    connection = redis.Redis.from_url(redis_server.url)
    subscribed = CommandRecordingWorker([Queue("pubsub-test", connection=connection)], connection=connection)
    subscribed.received = []
    subscribed.subscribe()
    yield subscribed
    connection.close()


def test_unsubscribe_returns_at_once_when_the_thread_already_went_back_to_waiting(worker: CommandRecordingWorker) -> None:
    assert worker.pubsub is not None
    worker.pubsub.unsubscribe()  # type: ignore[no-untyped-call]  # the thread reads this reply and waits again: the race
    wait_for(lambda: not worker.pubsub.subscribed if worker.pubsub else True, timeout=5, message="the reply read by the thread")

    began = time.monotonic()
    worker.unsubscribe()  # type: ignore[no-untyped-call]  # unannotated in RQ
    took = time.monotonic() - began

    # RQ's own wait makes this about 60 s; ours ends within one short wait (plus a loaded machine's slack).
    assert took < PUBSUB_WAIT_SECONDS + 5, f"unsubscribe took {took:.1f} s"
    thread: Any = worker.pubsub_thread  # RQ declares it None; it is redis-py's PubSubWorkerThread
    assert not thread.is_alive()


def test_a_command_still_arrives_as_soon_as_it_is_published(worker: CommandRecordingWorker, redis_server: PrivateRedis) -> None:
    publisher = redis.Redis.from_url(redis_server.url)
    wait_for(lambda: publisher.pubsub_numsub(worker.pubsub_channel_name)[0][1] == 1, timeout=5, message="the subscription")

    publisher.publish(worker.pubsub_channel_name, '{"command": "shutdown"}')

    wait_for(lambda: worker.received, timeout=5, message="the command handled")
    assert worker.received[0]["data"] in (b'{"command": "shutdown"}', '{"command": "shutdown"}')
    worker.unsubscribe()  # type: ignore[no-untyped-call]  # unannotated in RQ
    publisher.close()
