"""Chapter 1, exercises 1 and 2: a client that waits for its task, and a claim race."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session

from phase1_basic import transitions

FINAL = {"completed", "failed", "cancelled"}


def submit_and_wait(client: httpx.Client, task_type: str, payload: dict[str, Any], *, timeout: float = 10.0) -> dict[str, Any]:
    """Submit a task, then poll its ``Location`` until it ends; never wait longer than ``timeout``."""
    response = client.post("/tasks", json={"task_type": task_type, "payload": payload})
    response.raise_for_status()
    location = response.headers["Location"]
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        task: dict[str, Any] = client.get(location).raise_for_status().json()
        if task["status"] in FINAL:
            return task
        if time.monotonic() + delay > deadline:
            raise TimeoutError(f"task {task['id']} still {task['status']} after {timeout} s")
        time.sleep(delay)
        delay = min(delay * 2, 1.0)  # back off: a slow task should not cost a request every 50 ms


def claim_race(engine: Engine, task_id: uuid.UUID, claimants: int) -> int:
    """Start ``claimants`` threads claiming the task at once; return how many won."""
    barrier = threading.Barrier(claimants)
    wins: list[bool] = []

    def claim() -> None:
        barrier.wait()
        with Session(engine) as session:
            wins.append(transitions.mark_running(session, task_id, worker=threading.current_thread().name))

    threads = [threading.Thread(target=claim) for _ in range(claimants)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(wins)
