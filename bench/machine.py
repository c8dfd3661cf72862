"""The facts a reader needs to compare two benchmark runs: hardware, software, and how busy it was.

Absolute figures mean nothing without them: the same code on a laptop and on a loaded 2-core
CI runner differs several times over. The load average before and after the run says whether
something else competed for the CPU while it ran; the process wake-up time says whether the
machine (often a virtual one) makes every round trip between two processes dear.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import redis

from bench.wakeup import wakeup_fact

PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "sqlalchemy",
    "rq",
    "redis",
    "httpx",
    "celery",
    "kombu",
)


def cpu_model() -> str:
    """The CPU's model name on Linux; the platform's processor string elsewhere."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def usable_cores() -> int:
    """Cores this process may run on (a container or ``taskset`` can allow fewer than exist)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load_average() -> str:
    if not hasattr(os, "getloadavg"):
        return "n/a"
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def package_versions() -> str:
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (absent)")
    return ", ".join(versions)


def redis_version(redis_url: str | None) -> str:
    if redis_url is None:
        return "not used"
    with redis.Redis.from_url(redis_url) as client:
        info = client.info("server")
    return f"redis-server {info['redis_version']} (private, loopback, appendonly everysec)"


def machine_facts(redis_url: str | None, workdir: Path) -> dict[str, str]:
    """What ran the benchmark, as label → text, in the order the report prints them."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": f"{usable_cores()} usable ({os.cpu_count()} present): the load client shares them with the servers",
        "cpu": cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()} on {platform.system()} {platform.release()}",
        "database": f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=NORMAL), fresh file per measurement in {workdir}",
        "redis": redis_version(redis_url),
        "packages": package_versions(),
        "process wake-up": wakeup_fact(),
        "load average at start (1/5/15 min)": load_average(),
        "argv": " ".join([Path(sys.executable).name, "-m", "bench", *sys.argv[1:]]),
    }
