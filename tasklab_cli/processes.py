"""Start, watch and stop the real processes of a phase: its API server and its workers.

The tests, the demo, ``make run`` and the benchmarks all run a phase the way a user would:
``uvicorn phaseN_x.api:app`` and ``python -m phaseN_x.worker`` as separate OS processes, with
their configuration in environment variables. This module is the one place that knows how.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from shared.redis_server import free_port

STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Phase:
    """One phase folder: its number, its package and whether it has a worker."""

    number: int
    package: str
    has_worker: bool
    #: From phase 4 on: workers serve ``/metrics`` on ``--metrics-port``, the API serves the dashboard.
    has_metrics: bool = False
    #: From phase 5 on: one worker command supervises a pool (``--processes N``).
    has_pool: bool = False

    @property
    def api_target(self) -> str:
        return f"{self.package}.api:app"

    @property
    def worker_module(self) -> str:
        return f"{self.package}.worker"


PHASES: dict[int, Phase] = {
    1: Phase(1, "phase1_basic", has_worker=False),
    2: Phase(2, "phase2_queue", has_worker=True),
    3: Phase(3, "phase3_retry", has_worker=True),
    4: Phase(4, "phase4_monitoring", has_worker=True, has_metrics=True),
    5: Phase(5, "phase5_scaling", has_worker=True, has_metrics=True, has_pool=True),
}


def phase(number: int | str) -> Phase:
    try:
        return PHASES[int(number)]
    except (KeyError, ValueError):
        raise SystemExit(f"unknown phase {number!r}; choose one of {sorted(PHASES)}") from None


class ManagedProcess:
    """A child process with its output in a log file, stopped politely, or killed on demand."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path | None = None, quiet: bool = True) -> None:
        self.name = name
        self.args = args
        self.log_path: Path | None = None
        self._log = None
        if quiet:  # output to a log file the caller can read back (log_tail) when it fails
            self.log_path = (log_dir or Path(tempfile.mkdtemp(prefix="tasklab-logs-"))) / f"{name}.log"
            self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            args,
            env={**os.environ, **env},
            stdout=self._log if quiet else None,
            stderr=subprocess.STDOUT if quiet else None,
            # Its own process group: a signal we send reaches the RQ work horse too, and a
            # Ctrl-C in the terminal reaches the launcher first, which then stops us in order.
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        if self.log_path is None:
            return "(output went to the terminal)"
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        """SIGKILL the process group at once: a crash, not a shutdown.

        An RQ work horse puts itself in a process group of its own and survives this; the phase 3
        tests' ``crash()`` kills it too.
        """
        self.signal_group(signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL what is left (RQ finishes its current job on SIGTERM)."""
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        if self._log is not None:
            self._log.close()
            self._log = None


class ApiProcess(ManagedProcess):
    """A phase's API under uvicorn on a loopback port."""

    def __init__(self, phase: Phase, env: dict[str, str], port: int | None = None, quiet: bool = True, **kwargs: object) -> None:
        self.port = port or free_port()
        args = [sys.executable, "-m", "uvicorn", phase.api_target, "--host", "127.0.0.1", "--port", str(self.port)]
        # In a terminal, show every request; under tests and benchmarks, only problems.
        args += ["--log-level", "warning", "--no-access-log"] if quiet else ["--log-level", "info"]
        super().__init__(f"phase{phase.number}-api", args, env, quiet=quiet, **kwargs)  # type: ignore[arg-type]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_until_healthy(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> ApiProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not become healthy within {timeout} s:\n{self.log_tail()}")


def start_api(phase: Phase, env: dict[str, str], **kwargs: object) -> ApiProcess:
    return ApiProcess(phase, env, **kwargs).wait_until_healthy()  # type: ignore[arg-type]


def start_worker(phase: Phase, env: dict[str, str], *args: str, index: int = 1, **kwargs: object) -> ManagedProcess:
    """Start ``python -m phaseN_x.worker`` with the given extra arguments."""
    if not phase.has_worker:
        raise ValueError(f"phase {phase.number} has no worker")
    command = [sys.executable, "-m", phase.worker_module, *args]
    return ManagedProcess(f"phase{phase.number}-worker-{index}", command, env, **kwargs)  # type: ignore[arg-type]
