"""The two commands a newcomer runs first: ``make demo`` and ``make run``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import httpx

from shared.redis_server import free_port
from tests.support import wait_for


def answers(url: str) -> bool:
    return httpx.get(url, timeout=2).status_code == 200


def run_module(module: str, *args: str, env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m MODULE ARGS`` as a reader types it, with its output captured."""
    command = [sys.executable, "-m", module, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


def test_demo_completes_every_task_type_with_the_documented_result(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}

    result = run_module("tasklab_cli.demo", "--per-type", "1", "--time-scale", "0", env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "every task completed with the documented result" in result.stdout
    assert re.search(r"fibonacci\s+│\s+1 │\s+1 │\s+0 │ 55 ", result.stdout)
    assert "499999500000" in result.stdout


def test_run_serves_the_phase_and_stops_every_process_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "tasklab_cli.run", "--phase", "2", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "TASK_TIME_SCALE": "0"},
        cwd=tmp_path,
    )
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, timeout=30, message="the launched API to be ready")
        response = httpx.post(f"http://127.0.0.1:{port}/tasks", json={"task_type": "fibonacci", "payload": {"n": 10}})
        task_url = f"http://127.0.0.1:{port}{response.headers['location']}"
        wait_for(lambda: httpx.get(task_url).json()["status"] == "completed", message="the task to complete")
    finally:
        launcher.send_signal(signal.SIGTERM)
        output, _ = launcher.communicate(timeout=30)

    assert launcher.returncode == 0, output
    assert "stopping" in output
    children = subprocess.run(["pgrep", "-f", f"--port {port}"], capture_output=True, text=True).stdout
    assert children == ""
    assert (tmp_path / ".tasklab" / "phase2.db").exists()


def test_run_phase_4_prints_the_dashboard_and_every_metrics_endpoint(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "METRICS_DIR")}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "tasklab_cli.run", "--phase", "4", "--workers", "2", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "TASK_TIME_SCALE": "0"},
        cwd=tmp_path,
    )
    banner: list[str] = []
    try:
        assert launcher.stdout is not None
        for line in launcher.stdout:  # the banner ends with the Ctrl-C hint
            banner.append(line)
            if "Ctrl-C stops everything" in line:
                break
        text = "".join(banner)
        assert f"http://127.0.0.1:{port}/dashboard" in text
        worker_metrics = re.findall(r"http://127\.0\.0\.1:\d+/metrics", text)
        assert len(worker_metrics) == 3  # the API's and one per worker
        for url in worker_metrics:
            assert wait_for(partial(answers, url), message=url)
    finally:
        launcher.send_signal(signal.SIGTERM)
        launcher.communicate(timeout=30)
    assert launcher.returncode == 0


def test_phase_5_demo_runs_500_tasks_on_3_processes_and_higher_levels_wait_less(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "METRICS_DIR")}

    result = run_module("phase5_scaling.demo", "--tasks", "500", "--workers", "3", env=env, cwd=tmp_path, timeout=180)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "every task completed" in result.stdout
    mean_waits = {int(m[0]): float(m[1]) for m in re.findall(r"│\s+(\d) │\s+\d+ │\s+\d+ │\s+([\d.]+) s │", result.stdout)}
    assert sorted(mean_waits) == [1, 2, 3, 4, 5]
    assert mean_waits[5] < mean_waits[1]
    shares = re.search(r"tasks per pool process: (.*)", result.stdout)
    assert shares is not None and len(shares.group(1).split(",")) == 3


def test_the_phase_5_demo_keeps_its_tasks_in_database_url_for_manage_db(tmp_path: Path) -> None:
    """With ``DATABASE_URL`` set, the demo works on that store, and ``manage_db show`` lists its tasks after."""
    database_url = f"sqlite:///{tmp_path / 'mine.db'}"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "METRICS_DIR")} | {"DATABASE_URL": database_url}

    demo = run_module("phase5_scaling.demo", "--tasks", "12", "--workers", "1", "--time-scale", "0", env=env, cwd=tmp_path)
    shown = run_module("tasklab_cli.manage_db", "show", "20", env=env, cwd=tmp_path)

    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert f"database {database_url}" in demo.stdout.replace("\n", "")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert shown.stdout.count("completed") == 12, shown.stdout
