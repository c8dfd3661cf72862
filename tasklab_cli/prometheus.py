"""A private Prometheus server, started the way :class:`shared.redis_server.PrivateRedis` starts Redis.

Tests (and anyone trying phase 4 by hand) need a real Prometheus that scrapes a phase's API and
workers: a generated config with one job per kind of target, a scrape every second, a fresh
data directory, a free loopback port. The binary is Debian's ``prometheus`` package.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from shared.redis_server import free_port

INSTALL_HINT = "Prometheus is not installed: `apt-get install prometheus` (Debian's package ships prometheus and promtool)."
STARTUP_TIMEOUT_SECONDS = 30.0
SCRAPE_INTERVAL = "1s"


def find_binary(name: str) -> str:
    """The path of ``prometheus`` or ``promtool``, or an error that says how to install it."""
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(INSTALL_HINT)
    return path


def scrape_config(targets: dict[str, list[str]], tokens: dict[str, str] | None = None) -> dict[str, Any]:
    """A Prometheus config scraping each job's ``host:port`` targets every second; a job named in
    ``tokens`` sends that bearer token (phase 6's API answers ``/metrics`` to a key holder only)."""
    tokens = tokens or {}
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": job,
                "scrape_interval": SCRAPE_INTERVAL,
                "scrape_timeout": SCRAPE_INTERVAL,
                "static_configs": [{"targets": hosts}],
                **({"authorization": {"type": "Bearer", "credentials": tokens[job]}} if job in tokens else {}),
            }
            for job, hosts in targets.items()
        ],
    }


class PrivatePrometheus:
    """One ``prometheus`` process scraping ``targets`` (job name → ``host:port`` list); a context manager."""

    def __init__(self, targets: dict[str, list[str]], tokens: dict[str, str] | None = None) -> None:
        self.targets = targets
        self.tokens = tokens or {}
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="tasklab-prometheus-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrivatePrometheus:
        config = self.workdir / "prometheus.yml"
        config.write_text(json.dumps(scrape_config(self.targets, self.tokens), indent=2))  # JSON is YAML
        log = (self.workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                find_binary("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.process.returncode}: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"prometheus was not ready within {STARTUP_TIMEOUT_SECONDS} s: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        path = self.workdir / "prometheus.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result vector of an instant query (``[]`` when nothing matches)."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        response.raise_for_status()
        return list(response.json()["data"]["result"])

    def scalar(self, promql: str) -> float | None:
        """The single value of a query such as ``sum(...)``, or ``None`` when it has no sample."""
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PrivatePrometheus:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
