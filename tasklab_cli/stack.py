"""A whole phase running on this machine: Redis (when needed), the API and its workers.

``make run`` and ``make demo`` both need the same thing: find or start Redis, pick a
database, start the API, start N workers, and on exit stop everything in the right order
(the API first, so nothing new comes in; then the workers; then Redis). :class:`PhaseStack`
is that, as a context manager.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from shared.redis_server import PrivateRedis, free_port
from tasklab_cli.processes import ApiProcess, ManagedProcess, Phase, start_api, start_worker


@dataclass
class PhaseStack:
    """Start a phase's processes on enter, stop them on exit.

    ``database_url`` and ``redis_url`` default to ``$DATABASE_URL`` and ``$REDIS_URL``; with no
    ``REDIS_URL`` a private ``redis-server`` is started for the lifetime of the stack.
    """

    phase: Phase
    workers: int = 1
    database_url: str | None = None
    redis_url: str | None = None
    port: int | None = None
    quiet: bool = True
    log_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    api: ApiProcess | None = field(default=None, init=False)
    worker_processes: list[ManagedProcess] = field(default_factory=list, init=False)
    #: The ``/metrics`` port of each worker (phases with metrics), in the order of ``worker_processes``.
    metrics_ports: list[int] = field(default_factory=list, init=False)
    private_redis: PrivateRedis | None = field(default=None, init=False)
    _exit: ExitStack = field(default_factory=ExitStack, init=False)

    @property
    def env(self) -> dict[str, str]:
        env = {"DATABASE_URL": self.database_url or os.environ.get("DATABASE_URL", "sqlite:///./tasklab.db"), **self.extra_env}
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        return env

    def __enter__(self) -> PhaseStack:
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def _start(self) -> None:
        if self.phase.has_worker and not (self.redis_url or os.environ.get("REDIS_URL")):
            self.private_redis = PrivateRedis().start()
            self._exit.callback(self.private_redis.cleanup)
            self.redis_url = self.private_redis.url
        elif self.phase.has_worker:
            self.redis_url = self.redis_url or os.environ["REDIS_URL"]
        # A pool phase runs one supervisor of `workers` processes; earlier phases one process each.
        commands = (1 if self.phase.has_pool else self.workers) if self.phase.has_worker else 0
        for index in range(1, commands + 1):
            args: list[str] = ["--processes", str(self.workers)] if self.phase.has_pool else []
            if self.phase.has_metrics:
                self.metrics_ports.append(free_port())
                args += ["--metrics-port", str(self.metrics_ports[-1])]
            worker = start_worker(self.phase, self.env, *args, index=index, quiet=self.quiet, log_dir=self.log_dir)
            self._exit.callback(worker.stop)
            self.worker_processes.append(worker)
        self.api = start_api(self.phase, self.env, port=self.port, quiet=self.quiet, log_dir=self.log_dir)
        self._exit.callback(self.api.stop)  # registered last, so stopped first

    def dead_processes(self) -> list[ManagedProcess]:
        """Processes of the stack that have exited on their own (a crash, a bad config)."""
        everything: list[ManagedProcess] = [*self.worker_processes, *([self.api] if self.api else [])]
        return [p for p in everything if not p.alive()]

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._exit.close()
