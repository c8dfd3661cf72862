"""Each phase runs alone: its folder and ``shared/``, copied into an empty directory, are its whole system.

The copies run in a virtualenv where the project itself is not installed: the libraries are
there (a path line to this checkout's environment), the packages of the repository are not, so
an import of another phase, of ``tasklab_cli`` or of a test helper would fail the run instead
of quietly finding the checkout. Each phase's API and worker then serve a task end to end.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.redis_server import free_port
from tests.core.phases import PACKAGES, phase_params
from tests.support import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The libraries phase 1 must never load: it has no queue, no metrics, no structured logs.
LATER_LIBRARIES = ("rq", "redis", "prometheus_client", "structlog")
#: Phase 6's API asks every client for a key; the run uses this one.
API_KEY = "alone-key-0123456789abcdefghijklmnopqrstuv"


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a new virtualenv with the project's libraries and none of its packages."""
    venv = tmp_path_factory.mktemp("alone") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True, capture_output=True, text=True
    ).stdout.strip()
    # A path line, not the checkout's .pth files: the editable install of the project is one of
    # those, and a directory named in a .pth line has its own .pth files ignored.
    Path(purelib, "project-libraries.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def copy_alone(package: str, into: Path) -> Path:
    """``package``'s folder and ``shared/``, nothing else, in a directory of their own."""
    for folder in (package, "shared"):
        shutil.copytree(REPO_ROOT / folder, into / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return into


def bare_env(workdir: Path, redis_url: str) -> dict[str, str]:
    """Only what a phase is configured by: no PYTHONPATH, no inherited settings."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(workdir),
        "DATABASE_URL": f"sqlite:///{workdir / 'tasks.db'}",
        "REDIS_URL": redis_url,
        "TASK_TIME_SCALE": "0",
        "METRICS_DIR": str(workdir / "metrics"),
        "API_KEY_HASHES": f"alone:{hashlib.sha256(API_KEY.encode()).hexdigest()}",
    }


def run(python: Path, workdir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def started(request: pytest.FixtureRequest) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts, each in its own group; stopped (SIGTERM, then SIGKILL) at the end."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in reversed(processes):
        for signum in (signal.SIGTERM, signal.SIGKILL):
            if process.poll() is None:
                os.killpg(process.pid, signum)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    continue


def start(started: list[subprocess.Popen[bytes]], python: Path, workdir: Path, env: dict[str, str], *args: str) -> None:
    log = (workdir / f"{args[1].replace('.', '-')}.log").open("ab")
    started.append(
        subprocess.Popen([python, *args], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    )


def test_the_bare_virtualenv_cannot_import_the_project(bare_python: Path, tmp_path: Path) -> None:
    """The premise of the tests below: outside a copied folder, no package of the repository exists."""
    probe = run(bare_python, tmp_path, {"PATH": os.environ["PATH"]}, "-c", "import fastapi, rq, sqlmodel; import shared")

    assert probe.returncode == 1
    assert "No module named 'shared'" in probe.stderr


@pytest.mark.parametrize("number", phase_params())
def test_a_phase_imports_only_itself_and_shared(number: int, bare_python: Path, tmp_path: Path) -> None:
    package = PACKAGES[number]
    workdir = copy_alone(package, tmp_path)
    entry_points = [f"{package}.api"] + ([f"{package}.worker"] if number >= 2 else [])
    script = (
        f"import importlib, json, sys; [importlib.import_module(m) for m in {entry_points!r}]; "
        "print(json.dumps(sorted(sys.modules)))"
    )

    probe = run(bare_python, workdir, bare_env(workdir, ""), "-c", script)

    assert probe.returncode == 0, probe.stderr
    loaded = json.loads(probe.stdout)
    assert {name.split(".")[0] for name in loaded if name.startswith(("phase", "shared", "tasklab", "tests", "bench"))} == {
        package,
        "shared",
    }
    if number == 1:
        assert [library for library in LATER_LIBRARIES if library in loaded] == []


@pytest.mark.parametrize("number", phase_params())
def test_a_phase_copied_alone_serves_a_task_end_to_end(
    number: int, bare_python: Path, tmp_path: Path, redis_url: str, started: list[subprocess.Popen[bytes]]
) -> None:
    package = PACKAGES[number]
    workdir = copy_alone(package, tmp_path)
    env = bare_env(workdir, redis_url)
    if number == 6:
        schema = run(bare_python, workdir, env, "-m", f"{package}.schema")
        assert schema.returncode == 0, schema.stderr
    if number >= 2:
        start(started, bare_python, workdir, env, "-m", f"{package}.worker", *(["--processes", "1"] if number >= 5 else []))
    port = free_port()
    start(
        started, bare_python, workdir, env, "-m", "uvicorn", f"{package}.api:app", "--port", str(port), "--log-level", "warning"
    )
    headers = {"X-API-Key": API_KEY} if number == 6 else {}

    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=5) as client:

        def healthy() -> bool:
            try:
                return client.get("/health").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, timeout=30, message=f"{package}'s API to answer /health")
        accepted = client.post("/tasks", json={"task_type": "fibonacci", "payload": {"n": 10}})
        assert accepted.status_code == 202, accepted.text

        def finished() -> dict[str, object] | None:
            task: dict[str, object] = client.get(accepted.headers["Location"]).json()
            return task if task["status"] in ("completed", "failed") else None

        task = wait_for(finished, timeout=30, message=f"{package}'s task to finish")

    assert (task["status"], task["result"]) == ("completed", 55)


@pytest.mark.parametrize("number", [pytest.param(5, id="phase5")])
def test_the_phase_5_demo_runs_alone(number: int, bare_python: Path, tmp_path: Path, redis_url: str) -> None:
    workdir = copy_alone(PACKAGES[number], tmp_path)

    demo = run(
        bare_python, workdir, bare_env(workdir, redis_url), "-m", "phase5_scaling.demo", "--tasks", "10", "--time-scale", "0"
    )

    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert "every task completed" in demo.stdout
