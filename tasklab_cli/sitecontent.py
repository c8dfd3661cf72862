"""Markdown the tutorial site quotes from elsewhere in the repository, kept in sync by ``make docs``.

The site is built from ``docs/`` alone, so a chapter cannot link to ``../README.md``. What the
site needs from the README is generated into the page instead, with a
``<!-- generated: tasklab_cli.sitecontent:… -->`` region (see ``tasklab_cli.listings``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def readme_section(heading: str, root: Path = REPO_ROOT) -> str:
    """The body of the README's ``## heading`` section, up to the next ``##`` heading."""
    text = (root / "README.md").read_text()
    marker = f"\n## {heading}\n"
    if marker not in text:
        raise LookupError(f"README.md has no '## {heading}' section")
    return text.split(marker, 1)[1].split("\n## ", 1)[0].strip("\n")


def http_contract() -> str:
    """The HTTP contract every phase serves, as the README states it."""
    return readme_section("The HTTP contract")


# ---------------------------------------------------------------------------------------------
# Figures from the benchmark's data file: prose that quotes a measurement is generated from it,
# so a figure cannot disagree with docs/data/bench.json (``listings --check`` fails when it does).

BENCH_JSON = REPO_ROOT / "docs" / "data" / "bench.json"


def bench_data(path: Path = BENCH_JSON) -> dict[str, Any]:
    """The last ``make bench`` run written to the docs: ``python -m bench --json docs/data/bench.json``."""
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _drain(data: dict[str, Any], label: str, workers: int) -> dict[str, Any]:
    for row in data["drain"]:
        if row["label"] == label and row["workers"] == workers:
            return dict(row)
    raise LookupError(f"docs/data/bench.json has no drain of {label} with {workers} worker(s)")


def _submit(data: dict[str, Any], phase: int, route: str = "POST /tasks") -> dict[str, Any]:
    for row in data["submit"]:
        if row["phase"] == phase and row["route"] == route:
            return dict(row)
    raise LookupError(f"docs/data/bench.json has no {route} for phase {phase}")


def _memory(data: dict[str, Any], label: str, workers: int) -> dict[str, Any]:
    for row in data["drain_memory"]:
        if row["label"] == label and row["workers"] == workers:
            return dict(row)
    raise LookupError(f"docs/data/bench.json has no memory of {label} with {workers} worker(s)")


def _rate(value: float) -> str:
    return f"{value:,.1f}"


def bench_run() -> str:
    """The run docs/data/bench.json records: when, on what, with what (the page's one dated run)."""
    data = bench_data()
    machine = data["machine"]
    return (
        f"Run: **{machine['date']}**, {data['duration_seconds']:.0f} s "
        f"(`{machine['argv']}`). Machine: {machine['cores']}; {machine['cpu']}; {machine['python']}; "
        f"{machine['database'].split(', fresh file')[0]}; {machine['redis']}; "
        f"load average {machine['load average at start (1/5/15 min)']} at the start. Packages: {machine['packages']}."
    )


def phase5_drain() -> str:
    """Chapter 5's drain figures, phase 4 against the pool, from docs/data/bench.json."""
    data = bench_data()
    p4 = [_drain(data, "phase 4", n)["steady_tasks_per_second"] for n in (1, 2)]
    p5 = [_drain(data, "phase 5", n)["steady_tasks_per_second"] for n in (1, 2)]
    return (
        f"Figures from `make bench` ({data['config']['drain_tasks']:,} no-op tasks already queued, SQLite, "
        f"steady rate, {data['machine']['date']}, with the speed-ups of the next section; "
        "[Benchmarks](benchmarks.md) has the whole run): "
        f"phase 4 drains {_rate(p4[0])} tasks/s with one worker and {_rate(p4[1])} with two; the pool "
        f"{_rate(p5[0])} and {_rate(p5[1])}, **{p5[0] / p4[0]:.1f}× and {p5[1] / p4[1]:.1f}× phase 4**."
    )


def phase5_summary() -> str:
    """Chapter 5's "what it adds up to" table, from docs/data/bench.json."""
    data = bench_data()
    p4, p5, celery = (_drain(data, label, 2)["steady_tasks_per_second"] for label in ("phase 4", "phase 5", "Celery"))
    scaling = data["drain_scaling"]
    s4, s5 = _submit(data, 4), _submit(data, 5)
    m4, m5 = _memory(data, "phase 4", 2), _memory(data, "phase 5", 2)
    rows = [
        "| | before phase 5 | phase 5 |",
        "|---|---|---|",
        f"| drain, 2 processes, steady | phase 4: {_rate(p4)} tasks/s | {_rate(p5)} tasks/s ({p5 / p4:.1f}×) |",
        f"| Celery prefork, same attempt and writes, 2 processes | | {_rate(celery)} tasks/s: phase 5 is {p5 / celery:.2f}× |",
        f"| a second process, steady drain | Celery: {scaling['Celery']:.2f}× one process "
        f"| {scaling['phase 5']:.2f}× one process |",
        f"| `POST /tasks`, 16 clients | phase 4: {s4['requests_per_second']:,.0f} req/s, p99 {s4['p99_ms']:.1f} ms, "
        f"{s4['server_cpu_ms_per_request']:.2f} ms CPU | {s5['requests_per_second']:,.0f} req/s, "
        f"p99 {s5['p99_ms']:.1f} ms, {s5['server_cpu_ms_per_request']:.2f} ms CPU |",
        f"| resident memory per worker process | phase 4: {m4['worker_process_peak_rss_mb']:.0f} MB "
        f"| {m5['worker_process_peak_rss_mb']:.0f} MB |",
        f"| resident memory for 2 workers, all processes | phase 4: {m4['total_peak_rss_mb']:.0f} MB "
        f"| {m5['total_peak_rss_mb']:.0f} MB |",
    ]
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------------
# Reading time: one sitting per chapter. Prose at 200 words a minute, code (every line of a
# fenced block: listings, diffs, output, diagrams' source) at 30 lines a minute; the markers,
# HTML comments, are not read. tests/docs/test_reading_time.py holds each page to 30 minutes.

WORDS_PER_MINUTE = 200
CODE_LINES_PER_MINUTE = 30


@dataclass(frozen=True)
class Reading:
    lines: int
    words: int
    code_lines: int

    @property
    def minutes(self) -> float:
        return self.words / WORDS_PER_MINUTE + self.code_lines / CODE_LINES_PER_MINUTE


def reading(markdown: str) -> Reading:
    text = re.sub(r"<!--.*?-->", "", markdown, flags=re.DOTALL)
    words = code = 0
    fence: str | None = None
    for line in text.splitlines():
        if fence is None:
            opening = re.match(r"^\s*(`{3,}|~{3,})", line)
            if opening:
                fence = opening.group(1)
                continue
            words += len(re.findall(r"[\w'’-]+", re.sub(r"\]\([^)]*\)", "]", line)))
        elif line.strip() == fence:
            fence = None
        else:
            code += 1
    return Reading(lines=len(markdown.splitlines()), words=words, code_lines=code)


def reading_of(path: Path) -> Reading:
    """The reading time of one page."""
    return reading(path.read_text())


#: The front page's map: each page of the tutorial, what the reader runs in it, and what they
#: will have seen break. The minutes are computed from the page itself (``reading_of``).
CHAPTER_MAP: tuple[tuple[str, str, str, str], ...] = (
    (
        "01-basic.md",
        "1 · BackgroundTasks",
        "`make run PHASE=1`, `curl` a task, `kill -9` the server",
        "a task left `running` for ever when the server dies; `/health` taking 4 s behind slow tasks",
    ),
    (
        "02-queue.md",
        "2 · A real queue",
        "Redis, an API and an RQ worker, by hand",
        "a killed work horse leaving its task `running`; Redis shut down under the API (a `503`)",
    ),
    (
        "03-retry.md",
        "3 · Retries (part 1)",
        "`make run PHASE=3`, a flaky task, the same request twice",
        "a task that always fails, ending as a dead letter you send back",
    ),
    (
        "03b-recovery.md",
        "3b · Crash recovery (part 2)",
        "Redis, an API and two workers, by hand",
        "a worker `SIGKILL`ed mid-task, its task finished by another worker",
    ),
    (
        "04-monitoring.md",
        "4 · Metrics (part 1)",
        "an API and a worker with its own `/metrics`",
        "a worker `SIGKILL`ed, its counts adopted by the next one",
    ),
    (
        "04b-logs-stats.md",
        "4b · Logs and `/stats` (part 2)",
        "`make run PHASE=4 WORKERS=2`, a request id, `/stats`",
        "an oversized request id, refused and replaced",
    ),
    (
        "05-scaling.md",
        "5 · Priorities (part 1)",
        "`make run PHASE=5 WORKERS=2`, an urgent task, `/stats`",
        "Redis shut down, the status still read from the database",
    ),
    (
        "05b-pool.md",
        "5b · A worker pool (part 2)",
        "a pool of two processes, the priority demo",
        "a pool process `SIGKILL`ed and replaced by the supervisor",
    ),
    (
        "06-docker.md",
        "6 · Docker",
        "`make compose-up`: PostgreSQL, Redis, the API, workers, Prometheus",
        "a worker container `docker kill`ed, its task recovered",
    ),
    (
        "06b-beyond-one-host.md",
        "6b · Beyond one host (part 2)",
        "`kubectl kustomize` of the manifests; a cluster of your own (kind, k3d)",
        "a grace shorter than the drain, caught; a worker cut off by the network, its task taken over",
    ),
)


def chapter_map(docs: Path = REPO_ROOT / "docs") -> str:
    """The front page's table: minutes (computed from each page), what you run, what breaks."""
    rows = ["| chapter | reading | you run | you will have seen break |", "|---|---|---|---|"]
    for name, title, runs, breaks in CHAPTER_MAP:
        minutes = reading_of(docs / name).minutes
        rows.append(f"| [{title}]({name}) | {minutes:.0f} min | {runs} | {breaks} |")
    return "\n".join(rows)
