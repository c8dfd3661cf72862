"""The processes the demo runs: Redis, the pool, the API; started in order, stopped in reverse.

The demo needs nothing but this folder and ``shared/``: it starts phase 5 the way an operator
would (``python -m phase5_scaling.worker`` and ``uvicorn phase5_scaling.api:app``), each child in
a process group of its own so a stop reaches the pool's processes too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

import httpx

from shared.redis_server import PrivateRedis, free_port

#: How long the API may take to answer ``/health``, and a child to stop after SIGTERM (the pool
#: drains its running tasks first).
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0


class Child:
    """A child process writing to a log file in ``log_dir``, stopped politely, then firmly."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            args, env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self) -> None:
        """SIGTERM the group, wait for the drain, then SIGKILL what is left."""
        for signum in (signal.SIGTERM, signal.SIGKILL):
            if self.process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        self._log.close()


class DemoStack:
    """Phase 5 on this machine: ``REDIS_URL``'s Redis or a private one, a pool of N processes, the API."""

    def __init__(self, *, workers: int, database_url: str, log_dir: Path, env: dict[str, str]) -> None:
        self.workers = workers
        self.database_url = database_url
        self.log_dir = log_dir
        self.extra_env = env
        self.redis_url = os.environ.get("REDIS_URL", "")
        self.base_url = ""
        self._exit = ExitStack()

    def __enter__(self) -> DemoStack:
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def _start(self) -> None:
        if not self.redis_url:
            private = PrivateRedis().start()
            self._exit.callback(private.cleanup)
            self.redis_url = private.url
        env = {"DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url, **self.extra_env}
        pool = [sys.executable, "-m", "phase5_scaling.worker", "--processes", str(self.workers)]
        self._exit.callback(Child("pool", pool, env, self.log_dir).stop)
        port = free_port()
        api = [sys.executable, "-m", "uvicorn", "phase5_scaling.api:app", "--host", "127.0.0.1", "--port", str(port)]
        api_process = Child("api", [*api, "--log-level", "warning", "--no-access-log"], env, self.log_dir)
        self._exit.callback(api_process.stop)  # registered last, so stopped first
        self.base_url = f"http://127.0.0.1:{port}"
        self._wait_until_healthy(api_process)

    def _wait_until_healthy(self, api: Child) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if api.process.poll() is not None:
                raise RuntimeError(f"the API exited with {api.process.returncode}; see {api.log_path}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base_url}/health", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"the API did not answer /health within {STARTUP_TIMEOUT_SECONDS:.0f} s; see {api.log_path}")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._exit.close()
