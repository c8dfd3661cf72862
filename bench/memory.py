"""Resident memory of the processes that drain a queue, sampled while they drain.

Phase 5's targets price memory next to speed: "≤ 70 MB per worker process plus ≤ 130 MB for the rest".
A worker's memory grows as it imports, connects and runs its first jobs, so one reading at
start-up says little: a thread samples every process of the drain a few times a second and
keeps each one's peak.

Two figures per process, both from ``/proc`` through psutil:

* **RSS**, the pages a process has in RAM, shared ones included: what ``ps`` and ``top`` show
  and what the issue's targets are checked against.
* **PSS** (Linux only), each shared page divided among the processes that share it. A forked
  RQ work horse shares most of its pages with its parent, so two RSS figures count them twice;
  the PSS of the processes adds up to what they cost the machine together.

Every process is put on one of two sides, the way the issue counts: **worker processes** (those
that run tasks: a phase 2–4 RQ worker, a phase 5 pool process, a Celery pool child), and **the
rest** (what serves them: phase 4's reconciler child, RQ's work horse and scheduler, phase 5's
supervisor, Celery's main process). Redis and the database are not counted: every system here
needs them alike. Figures are in MB of 10⁶ bytes, the stricter reading of the issue's "MB".
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

import psutil

#: Seconds between two samples: a few readings a second of five or so processes costs the
#: benchmark process well under 1 % of a core, and a drain of a few seconds gets dozens.
SAMPLE_INTERVAL_SECONDS = 0.2
BYTES_PER_MB = 1_000_000

#: The issue's targets for phase 5's pool, in MB of resident memory (RSS).
WORKER_PROCESS_TARGET_MB = 70.0
REST_TARGET_MB = 130.0


@dataclass(frozen=True)
class Role:
    """What a process is in a drain: its label, and whether it runs tasks (a worker process)."""

    label: str
    is_worker: bool


#: Decides a process's role from the process and its depth below the process we launched (0: itself).
Classifier = Callable[[psutil.Process, int], Role]


def _cmdline(process: psutil.Process) -> str:
    return " ".join(process.cmdline())


def classify_rq_worker(process: psutil.Process, depth: int) -> Role:
    """Phases 2–4: each launched ``worker`` runs the tasks; its reconciler child and RQ's forks serve it."""
    if depth == 0:
        return Role("RQ worker process", is_worker=True)
    if "reconciler" in _cmdline(process):
        return Role("reconciler child", is_worker=False)
    # RQ forks a work horse per job, and one worker forks RQ's scheduler: same command line as the worker.
    return Role("forked work horse or RQ scheduler", is_worker=False)


def classify_pool(process: psutil.Process, depth: int) -> Role:
    """Phase 5: the launched supervisor runs no task; the ``--child`` processes it starts do."""
    if depth == 0:
        return Role("supervisor", is_worker=False)
    if depth == 1 and "--child" in _cmdline(process):
        return Role("pool process", is_worker=True)
    return Role("other process of the pool", is_worker=False)


def classify_celery(process: psutil.Process, depth: int) -> Role:
    """Celery prefork: the main process consumes and dispatches; its forked pool children run the tasks."""
    if depth == 0:
        return Role("Celery main process", is_worker=False)
    return Role("Celery pool process", is_worker=True)


@dataclass(frozen=True)
class Reading:
    """One process at one instant."""

    pid: int
    role: Role
    rss_bytes: int
    pss_bytes: int | None


def read_process(process: psutil.Process, role: Role) -> Reading | None:
    """RSS and, where the OS tells it, PSS of one process; ``None`` if it exited meanwhile.

    PSS reads ``/proc/PID/smaps_rollup``; when that is refused, RSS alone still counts.
    """
    try:
        try:
            info = process.memory_full_info()
            return Reading(process.pid, role, info.rss, getattr(info, "pss", None))
        except psutil.AccessDenied:
            return Reading(process.pid, role, process.memory_info().rss, None)
    except psutil.Error:
        return None  # a work horse lives for one job: it may be gone before we read it


def process_tree(root_pid: int) -> list[tuple[psutil.Process, int]]:
    """The root and its live descendants, each with its depth below the root."""
    try:
        root = psutil.Process(root_pid)
        descendants = root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []  # a burst worker exits once the queue is empty
    depth_of = {root_pid: 0}
    tree = [(root, 0)]
    for process in descendants:  # psutil lists parents before their children
        try:
            depth = depth_of.get(process.ppid(), 0) + 1
        except psutil.NoSuchProcess:
            continue
        depth_of[process.pid] = depth
        tree.append((process, depth))
    return tree


def _mb(value: float | None) -> float:
    return float("nan") if value is None else value / BYTES_PER_MB


@dataclass(frozen=True)
class RolePeak:
    """The largest one process of a role reached, how many such processes were seen, and each one's peak."""

    role: Role
    processes: int
    peak_rss_mb: float
    peak_pss_mb: float
    #: Every process's own peak RSS, largest first: the pool processes one by one.
    process_peaks_rss_mb: tuple[float, ...] = ()


@dataclass
class MemoryResult:
    """Peaks over a drain's samples, per role and per side (worker processes, the rest, all)."""

    samples: int = 0
    roles: list[RolePeak] = field(default_factory=list)
    #: The largest any single worker process reached (RSS, PSS).
    worker_process_peak_rss_mb: float = float("nan")
    worker_process_peak_pss_mb: float = float("nan")
    #: The rest, summed at each sample, at its largest.
    rest_peak_rss_mb: float = float("nan")
    rest_peak_pss_mb: float = float("nan")
    #: Every process of the drain, summed at each sample, at its largest.
    total_peak_rss_mb: float = float("nan")
    total_peak_pss_mb: float = float("nan")

    @property
    def within_targets(self) -> bool:
        """Phase 5's memory targets, on RSS (NaN, nothing measured, is not within)."""
        return self.worker_process_peak_rss_mb <= WORKER_PROCESS_TARGET_MB and self.rest_peak_rss_mb <= REST_TARGET_MB


def _sum_or_none(values: Sequence[int | None]) -> int | None:
    """The sum, or ``None`` if any value is missing: a partial PSS sum would look like a small one."""
    return None if None in values else sum(value for value in values if value is not None)


def _max_or_none(values: Sequence[int | None]) -> int | None:
    """The largest value, or ``None`` if there is none, or any one is missing."""
    return None if not values or None in values else max(value for value in values if value is not None)


def _peak_sum(samples: Sequence[Sequence[Reading]], pick: Callable[[Reading], bool]) -> tuple[float, float]:
    """The largest RSS and PSS sums of the picked processes at one sample, in MB."""
    rss_sums: list[int | None] = []
    pss_sums: list[int | None] = []
    for sample in samples:
        picked = [reading for reading in sample if pick(reading)]
        rss_sums.append(sum(reading.rss_bytes for reading in picked))
        pss_sums.append(_sum_or_none([reading.pss_bytes for reading in picked]))
    return _mb(_max_or_none(rss_sums)), _mb(_max_or_none(pss_sums))


def _role_peaks(samples: Sequence[Sequence[Reading]]) -> list[RolePeak]:
    """Per role, in the order first seen: how many processes, and the largest any of them reached."""
    by_role: dict[Role, list[Reading]] = {}
    for sample in samples:
        for reading in sample:
            by_role.setdefault(reading.role, []).append(reading)
    return [
        RolePeak(
            role=role,
            processes=len({reading.pid for reading in readings}),
            peak_rss_mb=_mb(max(reading.rss_bytes for reading in readings)),
            peak_pss_mb=_mb(_max_or_none([reading.pss_bytes for reading in readings])),
            process_peaks_rss_mb=_peaks_by_process(readings),
        )
        for role, readings in by_role.items()
    ]


def _peaks_by_process(readings: Sequence[Reading]) -> tuple[float, ...]:
    """Each process's largest RSS, in MB, largest first."""
    peaks: dict[int, int] = {}
    for reading in readings:
        peaks[reading.pid] = max(peaks.get(reading.pid, 0), reading.rss_bytes)
    return tuple(sorted((_mb(value) for value in peaks.values()), reverse=True))


def _largest(values: Iterable[float]) -> float:
    """The largest of the measured values (NaN: not measured), or NaN if none was."""
    return max((value for value in values if not math.isnan(value)), default=float("nan"))


def summarize(samples: Sequence[Sequence[Reading]]) -> MemoryResult:
    """Peaks per role, per worker process, and of the rest's and everyone's sums."""
    roles = _role_peaks(samples)
    workers = [peak for peak in roles if peak.role.is_worker]
    rest_rss, rest_pss = _peak_sum(samples, lambda reading: not reading.role.is_worker)
    total_rss, total_pss = _peak_sum(samples, lambda reading: True)
    return MemoryResult(
        samples=len(samples),
        roles=roles,
        worker_process_peak_rss_mb=_largest(peak.peak_rss_mb for peak in workers),
        worker_process_peak_pss_mb=_largest(peak.peak_pss_mb for peak in workers),
        rest_peak_rss_mb=rest_rss,
        rest_peak_pss_mb=rest_pss,
        total_peak_rss_mb=total_rss,
        total_peak_pss_mb=total_pss,
    )


class MemorySampler:
    """Sample the process trees under ``root_pids`` in a thread for as long as the ``with`` block lasts.

    A thread rather than a call from the drain's polling loop: the loop waits on the database at
    its own pace, and the samples stay evenly spaced whatever that costs.
    """

    def __init__(self, root_pids: Sequence[int], classify: Classifier, interval_seconds: float = SAMPLE_INTERVAL_SECONDS) -> None:
        self.root_pids = list(root_pids)
        self.classify = classify
        self.interval_seconds = interval_seconds
        self.samples: list[list[Reading]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def sample_once(self) -> None:
        """Read every live process of every tree once; an empty reading (all exited) is not kept."""
        readings = []
        for root_pid in self.root_pids:
            for process, depth in process_tree(root_pid):
                try:
                    role = self.classify(process, depth)
                except psutil.Error:
                    continue  # exited between the listing and its command line
                reading = read_process(process, role)
                if reading is not None:
                    readings.append(reading)
        if readings:
            self.samples.append(readings)

    def _run(self) -> None:
        while True:
            self.sample_once()
            if self._stop.wait(self.interval_seconds):
                return

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def result(self) -> MemoryResult:
        return summarize(self.samples)
