"""Part (e), on request (``--dashboards N``): ``POST /tasks`` throughput with dashboards open.

The worry: ten operators with the dashboard open must not slow the system they watch.
Each open dashboard asks ``GET /stats`` for its window every 2 s; the API computes an answer at
most once per window and second and shares it (``STATS_CACHE_SECONDS``, 1 s by default), and
the figures come from aggregates folded from the captured task changes, not from the task table.

One real phase 4 API (uvicorn, as ``make run`` starts it) on a fresh SQLite file, the
benchmark's private Redis, no worker (the tasks stay pending, the queue grows). ``POST /tasks``
of a no-op task is sent by ``concurrency`` clients (16 by default), the closed loop of part (a)
(:func:`bench.load.run_load`), in two conditions:

* **alone**: nothing else asks the API anything;
* **with dashboards**: N threads of this process each ask ``GET /stats?window=1h`` (the page's
  default) and, 2 s after each answer, ask again, as the page's refresh loop does. They start
  spread over the first 2 s, as people open pages at different moments.

``--dashboard-requests`` requests per condition, split into ``--rounds`` rounds that alternate
the two conditions (alone first in even rounds, second in odd ones), so the table's growth and
any other load on the machine meet both. Reported: each condition's rate and latency, their
ratio (the target: within 10 %), each round's own ratio (the two halves of a round meet the same
background load, so their median is the steadier figure on a shared machine), the API's CPU
per request, and what the dashboards saw (their ``/stats`` latency, and how many answers the
API actually computed for them).
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import redis
from rich.progress import Progress, TaskID

from bench import timing
from bench.config import NOOP_TASK, PHASE_ENV, BenchConfig
from bench.load import LoadSample, require_loopback, run_load
from bench.submit import server_cpu_seconds, summarize_log
from tasklab_cli.processes import PHASES, start_api

#: The phase measured: the first with ``/stats`` (phase 5 has the same route and aggregates).
DASHBOARD_PHASE = 4
#: How often an open dashboard refreshes (dashboard.js: ``REFRESH_MS``), after each answer.
REFRESH_SECONDS = 2.0
#: The window a dashboard asks for when nobody changed it (dashboard.js: ``DEFAULT_WINDOW``).
DASHBOARD_WINDOW = "1h"
#: A dashboard's request slower than this is a hang, not a measurement.
POLL_TIMEOUT_SECONDS = 10.0
#: The dashboard target: with the dashboards open, ``POST /tasks`` keeps at least 90 % of its rate.
DASHBOARD_SLOWDOWN_BUDGET = 0.10


@dataclass
class PollSamples:
    """What the dashboards saw: each ``/stats`` answer's latency, and which computation it was."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    #: ``generated_at`` → the API's ``elapsed_ms`` for that computation: answers shared by the
    #: cache carry the same ``generated_at``, so the keys are the computations made.
    computations: dict[str, float] = field(default_factory=dict)

    @property
    def median_ms(self) -> float:
        return timing.median_ms(self.latencies_ms)

    @property
    def p95_ms(self) -> float:
        return timing.p95_ms(self.latencies_ms)

    @property
    def computed_median_ms(self) -> float:
        return statistics.median(self.computations.values()) if self.computations else float("nan")


@dataclass
class DashboardResult:
    """Both conditions' pooled rounds, the API's CPU in each, and the dashboards' view."""

    dashboards: int
    concurrency: int
    rounds: int
    alone: LoadSample = field(default_factory=LoadSample)
    with_dashboards: LoadSample = field(default_factory=LoadSample)
    alone_cpu_seconds: float = 0.0
    with_dashboards_cpu_seconds: float = 0.0
    #: Each round's rate, in order: how much the rounds of one condition differ is the noise
    #: a difference between the conditions has to stand out of.
    alone_round_rates: list[float] = field(default_factory=list)
    with_dashboards_round_rates: list[float] = field(default_factory=list)
    polls: PollSamples = field(default_factory=PollSamples)

    @property
    def throughput_ratio(self) -> float:
        """With dashboards ÷ alone: 1.0 means the dashboards cost the submits nothing."""
        alone, watched = self.alone.requests_per_second, self.with_dashboards.requests_per_second
        return watched / alone if alone and not math.isnan(alone) and not math.isnan(watched) else float("nan")

    @property
    def round_ratios(self) -> list[float]:
        """Each round's rate with dashboards ÷ the same round's rate alone, measured seconds apart.

        Another program's burst of load on the machine slows both halves of a round alike, so
        these ratios vary less than the pooled rates when the machine is shared.
        """
        return [
            watched / alone
            for alone, watched in zip(self.alone_round_rates, self.with_dashboards_round_rates, strict=False)
            if alone and not math.isnan(alone) and not math.isnan(watched)
        ]

    @property
    def median_round_ratio(self) -> float:
        ratios = self.round_ratios
        return statistics.median(ratios) if ratios else float("nan")

    @property
    def within_target(self) -> bool:
        return self.throughput_ratio >= 1 - DASHBOARD_SLOWDOWN_BUDGET

    @property
    def errors(self) -> int:
        """Submits and dashboard polls that got no proper answer."""
        return self.alone.errors + self.with_dashboards.errors + self.polls.errors

    @staticmethod
    def cpu_ms_per_request(cpu_seconds: float, sample: LoadSample) -> float:
        return 1000 * cpu_seconds / sample.ok if sample.ok else float("nan")


class Dashboards:
    """N threads, each polling ``GET /stats`` like an open dashboard, until :meth:`stop`."""

    def __init__(self, base_url: str, count: int, samples: PollSamples) -> None:
        require_loopback(base_url)
        self.base_url = base_url
        self.count = count
        self.samples = samples
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._poll, args=(index * REFRESH_SECONDS / count,), name=f"dashboard-{index}", daemon=True)
            for index in range(count)
        ]

    def __enter__(self) -> Dashboards:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=POLL_TIMEOUT_SECONDS + REFRESH_SECONDS)

    def _poll(self, opens_after: float) -> None:
        if self._stop.wait(opens_after):
            return
        with httpx.Client(base_url=self.base_url, timeout=POLL_TIMEOUT_SECONDS) as client:
            while not self._stop.is_set():
                sent = time.perf_counter()
                try:
                    answer = client.get("/stats", params={"window": DASHBOARD_WINDOW})
                    latency_ms = (time.perf_counter() - sent) * 1000
                    body = answer.json() if answer.status_code == 200 else None
                except (httpx.HTTPError, ValueError) as exc:
                    self._failed(f"{type(exc).__name__}: {exc}")
                else:
                    if body is None:
                        self._failed(f"HTTP {answer.status_code}: {answer.text[:200]}")
                    else:
                        with self._lock:
                            self.samples.latencies_ms.append(latency_ms)
                            self.samples.computations[body["generated_at"]] = float(body["elapsed_ms"])
                # The page schedules its next refresh when this one has ended.
                if self._stop.wait(REFRESH_SECONDS):
                    return

    def _failed(self, why: str) -> None:
        with self._lock:
            self.samples.errors += 1
            self.samples.first_error = self.samples.first_error or why


def measure_dashboards(config: BenchConfig, workdir: Path, redis_url: str, progress: Progress) -> DashboardResult:
    """Phase 4's ``POST /tasks`` alone and with ``config.dashboards`` dashboards polling, in alternating rounds."""
    result = DashboardResult(dashboards=config.dashboards, concurrency=config.concurrency, rounds=config.rounds)
    env = {
        **PHASE_ENV,
        "DATABASE_URL": f"sqlite:///{workdir / 'dashboards.db'}",
        "REDIS_URL": redis_url,
        "METRICS_DIR": str(workdir / "dashboards-metrics"),
    }
    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()  # the benchmark's private server: nothing of anyone else's
    per_round = max(1, -(-config.dashboard_requests // config.rounds))
    time_cap = config.time_cap_seconds / config.rounds
    api = start_api(PHASES[DASHBOARD_PHASE], env, log_dir=workdir)
    bars: list[TaskID] = []
    try:
        server = psutil.Process(api.pid)

        def load(bar: TaskID, requests: int) -> LoadSample:
            return run_load(
                api.base_url,
                "/tasks",
                NOOP_TASK,
                concurrency=config.concurrency,
                requests=requests,
                time_cap_seconds=time_cap,
                on_answer=lambda: progress.advance(bar),
            )

        bars.append(warm := progress.add_task("(e) warm-up", total=config.warmup))
        load(warm, config.warmup)
        bars.append(alone := progress.add_task("(e) POST /tasks alone", total=per_round * config.rounds))
        bars.append(
            watched := progress.add_task(f"(e) POST /tasks with {config.dashboards} dashboards", total=per_round * config.rounds)
        )
        for round_number in range(config.rounds):
            order = (False, True) if round_number % 2 == 0 else (True, False)
            for with_dashboards in order:
                cpu_before = server_cpu_seconds(server)
                if with_dashboards:
                    with Dashboards(api.base_url, config.dashboards, result.polls):
                        sample = load(watched, per_round)
                    result.with_dashboards_cpu_seconds += server_cpu_seconds(server) - cpu_before
                    result.with_dashboards.merge(sample)
                    result.with_dashboards_round_rates.append(sample.requests_per_second)
                else:
                    sample = load(alone, per_round)
                    result.alone_cpu_seconds += server_cpu_seconds(server) - cpu_before
                    result.alone.merge(sample)
                    result.alone_round_rates.append(sample.requests_per_second)
    except Exception as exc:
        raise RuntimeError(f"(e) dashboards benchmark failed: {exc}\nserver log:\n{summarize_log(api.log_tail(20000))}") from exc
    finally:
        for bar in bars:
            progress.remove_task(bar)
        api.stop()
    return result
