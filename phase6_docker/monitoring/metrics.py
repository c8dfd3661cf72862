"""Prometheus metrics that survive RQ's forked work horses and SIGKILLed workers.

The names are a public contract, like the HTTP API (chapter 4's metrics table lists them). The hard part
is not counting but *where the count lives*:

* RQ forks a work horse per job. A counter the horse increments in its own memory dies with
  it, so the parent's ``/metrics`` would never show it.
* A worker can be SIGKILLed. Its counts must not vanish from ``sum(...)`` in Prometheus, or the
  total of ``tasklab_tasks_finished_total`` would drop below what the database says.

prometheus-client's *multiprocess mode* solves the first: every value is a slot in a
memory-mapped file, written in place by whichever process increments it, and read back by the
exporter at scrape time. A SIGKILLed horse cannot take back what it wrote to the page cache.

For the second we add one rule: **a metrics directory is exported by exactly one live process,
the one holding its lock** (``flock``). Each exporting process (the API, each worker) creates its
own directory and locks it; its work horses and its reconciler write into it. When a process
dies the kernel releases its lock, and the next scrape of any other exporter *adopts* the
orphaned directory: takes the lock and exports its files from then on. Counters are never
lost, and never exported twice, without any coordination beyond the file system.

Directories live under one root per deployment (``METRICS_DIR``), so this holds for the
processes of one host; phase 6 discusses what changes across hosts.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import prometheus_client.values
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker

from shared.models import PRIORITY_HIGHEST, PRIORITY_LOWEST, TASK_TYPES, TaskStatus

#: Content type of the Prometheus text format, for the ``/metrics`` responses.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: The environment variable prometheus-client reads to find the directory of the values files.
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Seconds, for tasks: from a no-op (milliseconds) to the longest job timeout (10 minutes).
TASK_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
#: Seconds, for HTTP requests: the API answers in milliseconds; a second is already an incident.
HTTP_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

#: The ``route`` label of a request that matched no route: a bounded label, never the raw path.
UNMATCHED_ROUTE = "<unmatched>"

LOCK_FILE = ".lock"

#: The bounded values of the task labels (``outcome`` and ``kind``).
FINAL_OUTCOMES = tuple(status.value for status in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED))
REPAIR_KINDS = ("enqueued", "recovered", "failed", "promoted")

#: The two gauges read from Redis at scrape time: (name, help, labels).
QUEUE_DEPTH: tuple[str, str, list[str]] = ("tasklab_queue_depth", "Jobs waiting in each RQ queue.", ["queue"])
WORKERS_ALIVE: tuple[str, str, list[str]] = ("tasklab_workers_alive", "Workers registered and heart-beating.", [])


class TaskMetrics:
    """The metrics of the contract, as prometheus-client objects.

    Build it *after* :func:`use_directory`: a metric created before writes to process memory,
    not to the shared files. Nothing registers in prometheus-client's global registry, so two
    apps in one test process never collide; the exporter reads the files instead.
    """

    def __init__(self) -> None:
        self.submitted = Counter(
            "tasklab_tasks_submitted", "Tasks accepted by the API (202).", ["task_type", "priority"], registry=None
        )
        self.finished = Counter(
            "tasklab_tasks_finished",
            "Tasks that reached a final status, counted once where the transition happened.",
            ["task_type", "outcome"],
            registry=None,
        )
        self.retries = Counter("tasklab_task_retries", "Attempts that failed and will be retried.", ["task_type"], registry=None)
        self.run_seconds = Histogram(
            "tasklab_task_run_seconds",
            "Duration of one attempt, from its start to its end.",
            ["task_type"],
            buckets=TASK_SECONDS_BUCKETS,
            registry=None,
        )
        self.wait_seconds = Histogram(
            "tasklab_task_wait_seconds",
            "Time a job waited in the queue before an attempt started.",
            ["task_type"],
            buckets=TASK_SECONDS_BUCKETS,
            registry=None,
        )
        self.repairs = Counter(
            "tasklab_reconciler_repairs", "Tasks the reconciler re-enqueued or repaired.", ["kind"], registry=None
        )
        self.http_requests = Counter(
            "tasklab_http_requests", "API requests, by route template.", ["method", "route", "status"], registry=None
        )
        self.http_duration = Histogram(
            "tasklab_http_request_duration_seconds",
            "API latency, by route template.",
            ["method", "route"],
            buckets=HTTP_SECONDS_BUCKETS,
            registry=None,
        )

    def initialize_series(self, *, submits: bool = False) -> None:
        """Create every bounded series at zero, in the exporting process, before any work.

        Prometheus computes ``rate()`` per series, from its first sample. A series born at 1
        when the first task of its type finishes hides that first task from every rate, and a
        type that never failed has no failure series to divide. So each exporter starts with
        all of them at 0 (task types, priorities, outcomes and repair kinds are all bounded).
        ``submits``: only the API accepts tasks, so only it exports the submitted series.
        """
        for task_type in TASK_TYPES:
            for priority in range(PRIORITY_LOWEST, PRIORITY_HIGHEST + 1) if submits else ():
                self.submitted.labels(task_type, str(priority))
            for outcome in FINAL_OUTCOMES:
                self.finished.labels(task_type, outcome)
            self.retries.labels(task_type)
            self.run_seconds.labels(task_type)
            self.wait_seconds.labels(task_type)
        for kind in REPAIR_KINDS:
            self.repairs.labels(kind)


# ----------------------------------------------------------------------------------------------
# Where the values live


def default_metrics_root(database_url: str, redis_url: str | None) -> Path:
    """The metrics root when ``METRICS_DIR`` is unset: one per deployment, found by every process.

    The API and the workers of one deployment share a database and a Redis, so a digest of the
    two names the same directory in all of them, and a different one for another deployment.
    """
    digest = hashlib.sha256(f"{database_url}|{redis_url}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "tasklab-metrics" / digest


def use_directory(directory: Path, process_identity: Callable[[], str]) -> None:
    """Make every metric value created from now on a slot in a file of ``directory``.

    ``process_identity`` names this process's files (``counter_<identity>.db`` …). Two processes
    writing at the same time must have different identities; a process that forks children
    which write one at a time (a worker and its work horses) may give them all one identity, so
    a thousand jobs make one file, not a thousand.
    """
    os.environ[MULTIPROC_DIR_ENV] = str(directory)
    prometheus_client.values.ValueClass = prometheus_client.values.MultiProcessValue(process_identity)


def worker_identity(parent_pid: int) -> Callable[[], str]:
    """Files named ``main`` for the worker, ``horse`` for its work horses.

    RQ's forking worker runs one horse at a time, so all of them can share one file. A new horse
    sees its identity differ from its parent's, and prometheus-client then reopens the files
    and reads the current values from them, so no horse overwrites the counts of the one
    before it.
    """
    return lambda: "main" if os.getpid() == parent_pid else "horse"


@dataclass
class MetricsDirectories:
    """The directories this process exports: its own, and the orphans it adopted."""

    root: Path
    own: Path | None = None
    _locks: dict[Path, int] = field(default_factory=dict)

    @classmethod
    def claim(cls, root: Path, prefix: str) -> MetricsDirectories:
        """Create a fresh directory under ``root`` and lock it: this process exports it while it lives.

        The directory is locked under a hidden name, then renamed, so no other exporter can
        adopt it in the instant between its creation and its lock.
        """
        root.mkdir(parents=True, exist_ok=True)
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        hidden = root / f".{name}"
        hidden.mkdir()
        fd = os.open(hidden / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        final = root / name
        hidden.rename(final)
        directories = cls(root, final)
        directories._locks[final] = fd
        return directories

    def adopt_orphans(self) -> None:
        """Take over every directory under the root whose exporter is gone (its lock is free)."""
        try:
            candidates = [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        except FileNotFoundError:
            return
        for directory in candidates:
            if directory in self._locks:
                continue
            try:
                fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # a live process exports it
                continue
            self._locks[directory] = fd

    def value_files(self) -> list[str]:
        return [str(path) for directory in self._locks for path in directory.glob("*.db")]


def unowned_directory(root: Path, prefix: str) -> Path:
    """A directory for a process that serves no ``/metrics`` (a standalone reconciler).

    It is never locked by its writer, so the first exporter to scrape adopts it at once and
    exports it while the writer is still adding to it: one exporter, as always.
    """
    directory = root / f"{prefix}-{uuid.uuid4().hex[:12]}"
    directory.mkdir(parents=True)
    return directory


# ----------------------------------------------------------------------------------------------
# Exporting


class FilesCollector(Collector):
    """Reads the values of every directory a process exports, adopting orphans first."""

    def __init__(self, directories: MetricsDirectories) -> None:
        self.directories = directories

    def collect(self) -> Iterable[Metric]:
        self.directories.adopt_orphans()
        metrics: Iterable[Metric] = MultiProcessCollector.merge(self.directories.value_files(), accumulate=True)
        return metrics  # prometheus_client leaves merge() unannotated: its Any stops here


class QueueCollector(Collector):
    """Queue depth and live workers, read from Redis at scrape time (exported by the API only).

    These are facts about the whole deployment, not about one process: exported by every
    worker too, ``sum(tasklab_queue_depth)`` would count each queue once per worker.
    """

    def __init__(self, connection: Redis, queues: Callable[[], Sequence[Queue]]) -> None:
        self.connection = connection
        self.queues = queues

    def collect(self) -> Iterator[Metric]:
        try:
            queues = list(self.queues())
            depths = [(queue.name, queue.count) for queue in queues]
            workers = {worker.name for queue in queues for worker in Worker.all(queue=queue)}
        except RedisError:
            return  # Redis is down: export nothing rather than a wrong zero (and never fail the scrape)
        depth = GaugeMetricFamily(QUEUE_DEPTH[0], QUEUE_DEPTH[1], labels=QUEUE_DEPTH[2])
        for name, count in depths:
            depth.add_metric([name], count)
        yield depth
        yield GaugeMetricFamily(WORKERS_ALIVE[0], WORKERS_ALIVE[1], value=len(workers))


def serve_in_thread(directories: MetricsDirectories, host: str, port: int) -> None:
    """Serve ``/metrics`` of these directories (and every orphan they adopt) from a daemon thread.

    A worker's exporter. The thread reads files and takes ``flock`` locks, nothing else: no
    logging, no database, no Redis, so a work horse forked while it runs inherits no lock held
    by it (phase 4 forks a horse per job).
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FilesCollector(directories))
    start_http_server(port, addr=host, registry=registry)


def render(directories: MetricsDirectories, *extra: Collector) -> bytes:
    """The text a ``/metrics`` endpoint answers with: the files, plus live collectors."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FilesCollector(directories))
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry)


def reference_table() -> str:
    """The metrics reference of docs/04-monitoring.md, as a Markdown table built from the code.

    ``make docs`` writes it into the chapter and the docs test fails when they differ, so the
    reference a reader trusts is the code that runs.
    """
    rows = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for metric in vars(TaskMetrics()).values():
        name = metric._name + ("_total" if metric._type == "counter" else "")
        labels = ", ".join(f"`{label}`" for label in metric._labelnames) or "–"
        rows.append(f"| `{name}` | {metric._type} | {labels} | {metric._documentation} |")
    for name, documentation, labelnames in (QUEUE_DEPTH, WORKERS_ALIVE):
        labels = ", ".join(f"`{label}`" for label in labelnames) or "–"
        rows.append(f"| `{name}` | gauge | {labels} | {documentation} (API only, read from Redis) |")
    return "\n".join(rows)
