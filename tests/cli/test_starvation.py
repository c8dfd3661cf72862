"""``python -m tasklab_cli.starvation``: the measurement chapters 1 and 2 quote, run small on phase 1.

Real processes, as a reader runs it: the tool starts phase 1's API itself. Ten one-second tasks
instead of sixty five-second ones keep it to seconds; the report's shape is the chapters', and
every task it accepted must have completed by the time it counts them.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil

from tests.support import wait_for

SMALL = ["--idle-requests", "5", "--tasks", "10", "--time-scale", "0.2", "--submit-at", "0.5", "--probe-interval", "0.1"]
SMALL += ["--window", "1", "--duration", "15"]


def listening_port(processes: list[psutil.Process]) -> int | None:
    """The port the tool's API listens on: the one listening socket among the processes it started."""
    for process in processes:
        for connection in process.net_connections(kind="tcp"):
            if connection.status == psutil.CONN_LISTEN:
                return int(connection.laddr.port)
    return None


def tasks_running(port: int) -> bool:
    page = httpx.get(f"http://127.0.0.1:{port}/tasks", params={"status": "running", "limit": 1}, timeout=5).json()
    return bool(page["total"])


ROUTE_LINE = r"  {route}\s+n=\s*(\d+)  median\s+[\d.]+ ms  max\s+[\d.]+ ms  status (\{{.*\}})"


def route(output: str, name: str, section: str) -> tuple[int, str]:
    """The count and the status counts of route ``name`` in the report's ``section`` (idle, or under load)."""
    match = re.search(ROUTE_LINE.format(route=re.escape(name)), output.split("POSTed at once")[section == "load"])
    assert match is not None, f"no {name} line ({section}) in:\n{output}"
    return int(match.group(1)), match.group(2)


def test_the_report_has_the_chapters_shape_and_every_accepted_task_completes(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tasklab_cli.starvation", "--phase", "1", *SMALL],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout
    assert "idle (5 sequential requests each):" in output
    assert route(output, "GET /health", "idle") == (5, "{200: 5}")
    assert route(output, "GET /tasks/{id}", "idle") == (5, "{200: 5}")
    assert "10 ai_summarization tasks (1 s each) POSTed at once at t=0.5 s; a probe GETs every 0.1 s:" in output
    assert route(output, "POST /tasks", "load") == (10, "{202: 10}")
    for probe in ("GET /health", "GET /tasks/{id}"):
        sent, statuses = route(output, probe, "load")
        assert statuses == f"{{200: {sent}}}"
    assert "slowest probe per 1 s window, by the time it was sent (t=0: probes start):" in output
    assert re.search(r"^  window\s+GET /health\s+GET /tasks/\{id\}$", output, re.MULTILINE)
    assert re.search(r"^  0-1 s\s+\d+ ms\s+\d+ ms$", output, re.MULTILINE)
    last = output.rstrip().splitlines()[-1]
    assert re.fullmatch(
        r"at t=\d+ s the 10 accepted ai_summarization tasks are: "
        r"\{'pending': 0, 'running': 0, 'completed': 10, 'failed': 0\}",
        last,
    ), output


def test_ctrl_c_stops_every_process_it_started(tmp_path: Path) -> None:
    tool = subprocess.Popen(
        [sys.executable, "-m", "tasklab_cli.starvation", "--phase", "1", *SMALL, "--time-scale", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert tool.stdout is not None
        for line in tool.stdout:  # the probes start now, and the slow tasks half a second later
            if "POSTed at once" in line:
                break
        started = psutil.Process(tool.pid).children(recursive=True)
        assert started, "the tool started no process"
        port = wait_for(lambda: listening_port(started), timeout=10, message="the tool's API listening")
        # Interrupted in the middle of the run: probes in flight, tasks running in the API.
        wait_for(lambda: tasks_running(port), timeout=20, interval=0.05, message="a task running")
        tool.send_signal(signal.SIGINT)  # what Ctrl-C sends the terminal's foreground process
        output, _ = tool.communicate(timeout=30)
    finally:
        tool.kill()

    assert tool.returncode == 130, output
    assert "interrupted" in output
    _, alive = psutil.wait_procs(started, timeout=20)
    assert not alive
