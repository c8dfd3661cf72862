"""An RQ worker whose command channel lets it stop at once, every time: what phases 2 to 6 run.

RQ gives each worker a Redis pub/sub channel (``rq:pubsub:<name>``) for commands such as "stop the
job you are running", read by a thread that waits for a message up to 60 s at a time. When the
worker stops it unsubscribes, then asks that thread to stop. With redis-py 8 that second step
waits for the thread to end, and the thread often has already read the reply to the unsubscribe
and gone back to its 60-second wait: the worker that logged "done, quitting" then sits for up to a
minute (a ``--burst`` worker that does not exit, a SIGTERM that needs SIGKILL to finish).

The thread here waits at most :data:`PUBSUB_WAIT_SECONDS` at a time, so it notices the stop
request within that. A command still arrives the moment it is published: the wait ends early on a
message, it only comes back sooner when there is none.
"""

from __future__ import annotations

from rq.worker import BaseWorker

#: Longest wait of the command thread for a message before it looks whether it should stop.
PUBSUB_WAIT_SECONDS = 0.5


class PromptPubSubWorker(BaseWorker):
    """Mix in before RQ's worker class: its command thread stops within :data:`PUBSUB_WAIT_SECONDS`."""

    def subscribe(self) -> None:
        """RQ's own subscription, with a short wait instead of RQ's 60 s."""
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]  # RQ declares it None until set
            sleep_time=PUBSUB_WAIT_SECONDS, daemon=True, exception_handler=self._pubsub_exception_handler
        )
