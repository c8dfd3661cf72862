"""The must-show scenario of phase 6, against the Compose stack on the engine ``compose-test.sh`` started.

Each step prints what it saw and how long it took, and the first broken promise stops the run
with a non-zero exit. The steps:

1. the image: non-root user, no compiler;
2. ``up -d --scale worker=3``: every service healthy; ``verify`` (rate limit and Prometheus) exits 0;
3. 500 tasks submitted while one worker container is ``docker kill``ed and Redis is restarted:
   every accepted task ends ``completed``, none lost, none left ``running``;
4. ``stop worker`` while tasks run: the pools drain within their grace period (exit status 0,
   not Docker's SIGKILL) and no task is left ``running``; after ``start`` every task completes;
5. ``down`` (volumes kept) and ``up``: every row is still there, and the jobs queued in Redis are
   still queued (the append-only file), then run;
6. a worker container cut off the network (``docker network disconnect``) for three task leases
   while tasks run: its tasks are taken over, its late writes refused, every task completes once,
   and once reconnected the same container (no restart) runs tasks again.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from shared.redis_server import free_port
from shared.tasks import CATALOG

from ..envfile import write_deployment_files

T = TypeVar("T")

HERE = Path(__file__).resolve().parent.parent
PROJECT = "tasklab-ci"
COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "tcc")
QUEUES = [f"rq:queue:phase5:p{priority}" for priority in range(1, 6)]
UNFINISHED = ("pending", "running", "retrying")
#: Seconds the stack may take to be healthy; a vfs engine copies every image per container.
HEALTHY_WITHIN = 240.0
#: Seconds every submitted task may take to complete, crash repairs included (leases lapse in ~30 s).
COMPLETED_WITHIN = 240.0
LOAD_TASKS = 500
#: CPU-bound tasks long enough to be running when the workers are stopped.
SLOW_TASK = {"task_type": "compute", "payload": {"n": 30_000_000}}
SLOW_TASKS = 24
QUEUED_TASKS = 40


class ScenarioFailed(Exception):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise ScenarioFailed(message)


def say(message: str) -> None:
    print(f"  {message}", flush=True)


@contextmanager
def step(title: str) -> Iterator[None]:
    print(f"\n== {title}", flush=True)
    started = time.monotonic()
    yield
    print(f"   ok in {time.monotonic() - started:.1f} s", flush=True)


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 1.0) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise ScenarioFailed(f"timed out after {timeout:g} s waiting for {what}; last: {last!r}")


class Stack:
    """docker-compose 1.29 and docker, on our engine, for the one project of this run."""

    def __init__(self, env_file: Path, image: str) -> None:
        self.base = [
            "docker-compose",
            "--project-name",
            PROJECT,
            "--env-file",
            str(env_file),
            "-f",
            str(HERE / "compose.yaml"),
            "-f",
            str(HERE / "compose.ci.yaml"),
        ]
        self.image = image

    def compose(self, *args: str, check: bool = True, capture: bool = False) -> str:
        result = subprocess.run([*self.base, *args], text=True, capture_output=True)
        if check and result.returncode != 0:
            raise ScenarioFailed(f"docker-compose {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}")
        return result.stdout

    @staticmethod
    def docker(*args: str, check: bool = True) -> str:
        result = subprocess.run(["docker", *args], text=True, capture_output=True)
        if check and result.returncode != 0:
            raise ScenarioFailed(f"docker {' '.join(args)} exited {result.returncode}: {result.stderr[-2000:]}")
        return result.stdout

    def containers(self, service: str | None = None) -> list[dict[str, Any]]:
        """Every container of the project (running or not), inspected."""
        label = f"com.docker.compose.project={PROJECT}"
        filters = ["--filter", f"label={label}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        ids = self.docker("ps", "-aq", *filters).split()
        return json.loads(self.docker("inspect", *ids)) if ids else []

    def states(self) -> dict[str, str]:
        """Container name → ``healthy``, ``starting``, ``exited 0`` …"""
        found = {}
        for container in self.containers():
            state = container["State"]
            health = (state.get("Health") or {}).get("Status")
            found[container["Name"].lstrip("/")] = (
                health if state["Running"] and health else f"{state['Status']} {state['ExitCode']}"
            )
        return found

    def wait_healthy(self, workers: int) -> dict[str, str]:
        def ready() -> dict[str, str] | None:
            states = self.states()
            services = {name.split("_")[1] for name in states}
            running = [s for n, s in states.items() if "_schema_" not in n]
            worker_count = sum(1 for n, s in states.items() if "_worker_" in n and s == "healthy")
            schema_done = any("_schema_" in n and s == "exited 0" for n, s in states.items())
            if (
                {"postgres", "redis", "api", "prometheus", "schema"} <= services
                and schema_done
                and worker_count == workers
                and all(s == "healthy" or s.startswith("exited") for s in running)
                and sum(s == "healthy" for s in running) >= 4 + workers
            ):
                return states
            for name, state in states.items():
                if "_schema_" in name and state.startswith("exited") and state != "exited 0":
                    raise ScenarioFailed(f"the schema step failed ({state}):\n{self.compose('logs', '--tail', '40', 'schema')}")
            return None

        return wait_for(ready, HEALTHY_WITHIN, f"every service healthy with {workers} workers", interval=2.0)

    def redis_cli(self, *args: str) -> str:
        return self.compose("exec", "-T", "redis", "redis-cli", *args, capture=True).strip()

    def queued_jobs(self) -> int:
        return sum(int(self.redis_cli("LLEN", queue)) for queue in QUEUES)


class Api:
    """The published API, as a client of the stack sees it."""

    def __init__(self, url: str, key: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=15, headers={"Authorization": f"Bearer {key}"})

    def submit(self, body: dict[str, Any]) -> tuple[int, str | None]:
        try:
            response = self.client.post("/tasks", json=body)
        except httpx.HTTPError as exc:
            return 0, f"{type(exc).__name__}"
        return response.status_code, response.json().get("id") if response.status_code == 202 else response.text[:200]

    def count(self, status: str | None = None) -> int:
        params: dict[str, str | int] = {"limit": 1, **({"status": status} if status else {})}
        return int(self.client.get("/tasks", params=params).json()["total"])

    def counts(self) -> dict[str, int]:
        return {status: self.count(status) for status in ("pending", "running", "retrying", "completed", "failed", "cancelled")}

    def task(self, task_id: str) -> dict[str, Any]:
        task: dict[str, Any] = self.client.get(f"/tasks/{task_id}").json()
        return task

    def wait_all_completed(self, ids: list[str], timeout: float = COMPLETED_WITHIN) -> float:
        started = time.monotonic()

        def settled() -> dict[str, int] | None:
            counts = self.counts()
            return counts if not any(counts[s] for s in UNFINISHED) else None

        counts = wait_for(settled, timeout, "every task to finish", interval=1.0)
        expect(counts["failed"] == 0 and counts["cancelled"] == 0, f"tasks ended badly: {counts}")
        not_completed = [task_id for task_id in ids if self.task(task_id)["status"] != "completed"]
        expect(not not_completed, f"{len(not_completed)} accepted tasks not completed, e.g. {not_completed[:3]}")
        return time.monotonic() - started


def random_body(rng: random.Random) -> dict[str, Any]:
    task_type, definition = rng.choice(list(CATALOG.items()))
    return {"task_type": task_type.value, "payload": definition.example, "priority": rng.randint(1, 5)}


def check_image(stack: Stack) -> None:
    with step("the image runs as a non-root user and has no compiler"):
        script = (
            "id -u; id -un; for c in "
            + " ".join(COMPILERS)
            + "; do command -v $c && exit 1; done; ls /root/.cache 2>/dev/null && exit 2; exit 0"
        )
        result = subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", "sh", stack.image, "-c", script], text=True, capture_output=True
        )
        uid, name = (result.stdout.split() + ["?", "?"])[:2]
        expect(
            result.returncode == 0, f"found a compiler or a cache in the image: {result.stdout.strip()} {result.stderr.strip()}"
        )
        expect(uid != "0", f"the image runs as root (id -u = {uid})")
        config = json.loads(stack.docker("image", "inspect", stack.image))[0]["Config"]
        expect(bool(config.get("Healthcheck")), "the image has no HEALTHCHECK")
        say(
            f"id -u = {uid} ({name}); none of {', '.join(COMPILERS)} on PATH; "
            f"USER {config['User']}; HEALTHCHECK {config['Healthcheck']['Test']}"
        )


def start_and_verify(stack: Stack, api_url: str, prometheus_url: str, verify_key: str) -> None:
    with step("docker-compose up -d --scale worker=3: every service healthy"):
        stack.compose("up", "-d", "--no-build", "--scale", "worker=3")
        for name, state in sorted(stack.wait_healthy(workers=3).items()):
            say(f"{name}: {state}")
    with step("verify --check-rate-limit --prometheus-url against the published port"):
        command = [
            sys.executable,
            "-m",
            "phase6_docker.verify",
            "--url",
            api_url,
            "--api-key",
            verify_key,
            "--check-rate-limit",
            "--prometheus-url",
            prometheus_url,
            "--timeout",
            "120",
        ]
        result = subprocess.run(command, text=True)
        expect(result.returncode == 0, f"verify exited {result.returncode}")


def chaos(stack: Stack, api: Api) -> None:
    with step(f"{LOAD_TASKS} tasks while a worker is killed and Redis restarted"):
        rng = random.Random(6)
        bodies = [random_body(rng) for _ in range(LOAD_TASKS)]
        submitted = 0
        lock = threading.Lock()
        accepted: list[str] = []
        refused: list[tuple[int, str | None]] = []

        def submit(body: dict[str, Any]) -> None:
            nonlocal submitted
            status, detail = api.submit(body)
            with lock:
                submitted += 1
                if status == 202 and detail:
                    accepted.append(detail)
                else:
                    refused.append((status, detail))

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(submit, body) for body in bodies]
            wait_for(lambda: submitted >= LOAD_TASKS // 5, 60, "a fifth of the tasks submitted", interval=0.05)
            victim = stack.containers("worker")[0]["Name"].lstrip("/")
            stack.docker("kill", victim)
            say(f"docker kill {victim} after {submitted} submits")
            wait_for(lambda: submitted >= LOAD_TASKS // 2, 60, "half of the tasks submitted", interval=0.05)
            redis_name = stack.containers("redis")[0]["Name"].lstrip("/")
            stack.docker("restart", redis_name)
            say(f"docker restart {redis_name} after {submitted} submits")
            for future in futures:
                future.result()
        say(
            f"{len(accepted)} accepted (202), {len(refused)} refused in {time.monotonic() - started:.1f} s; "
            f"refused: {refused[:5]}"
        )
        expect(len(accepted) >= LOAD_TASKS * 0.9, "fewer than 90% of the submits were accepted")
        took = api.wait_all_completed(accepted)
        counts = api.counts()
        say(f"every accepted task completed {took:.1f} s after the last submit; none running, none failed: {counts}")


def drain(stack: Stack, api: Api) -> None:
    with step("docker-compose stop worker while tasks run: the pools drain"):
        # The killed replica may have been restarted by its restart policy, or not: all 3 up first.
        stack.compose("up", "-d", "--no-build", "--scale", "worker=3")
        stack.wait_healthy(workers=3)
        ids = [api.submit({**SLOW_TASK, "priority": 3})[1] for _ in range(SLOW_TASKS)]
        wait_for(lambda: api.count("running") >= 3, 60, "tasks running", interval=0.2)
        running_before = api.count("running")
        started = time.monotonic()
        stack.compose("stop", "worker")
        took = time.monotonic() - started
        exits = {c["Name"].lstrip("/"): c["State"]["ExitCode"] for c in stack.containers("worker")}
        say(f"{running_before} tasks running; stop took {took:.1f} s; exit codes {exits}")
        expect(all(code == 0 for code in exits.values()), "a worker did not exit cleanly within its grace (137 = killed)")
        expect(took < 30, f"stop took {took:.1f} s, longer than stop_grace_period (30 s)")
        counts = api.counts()
        expect(counts["running"] == 0, f"tasks left running after the stop: {counts}")
        say(f"after the stop: {counts}")
    with step("docker-compose start worker: every task completes"):
        stack.compose("start", "worker")
        took = api.wait_all_completed([task_id for task_id in ids if task_id])
        say(f"all {SLOW_TASKS} completed {took:.1f} s after start")


def persistence(stack: Stack, api: Api, api_url: str, load_key: str) -> Api:
    with step("down (volumes kept) and up: rows and queued jobs survive"):
        stack.compose("stop", "worker")
        ids = [api.submit(random_body(random.Random(i)))[1] for i in range(QUEUED_TASKS)]
        wait_for(lambda: stack.queued_jobs() >= QUEUED_TASKS, 30, "the new jobs queued in Redis", interval=0.5)
        rows, queued = api.count(), stack.queued_jobs()
        say(f"before down: {rows} task rows, {queued} jobs queued in Redis")
        stack.compose("down")
        stack.compose("up", "-d", "--no-build", "--scale", "worker=0")
        stack.wait_healthy(workers=0)
        api = Api(api_url, load_key)
        rows_after, queued_after = api.count(), stack.queued_jobs()
        say(f"after up: {rows_after} task rows, {queued_after} jobs queued")
        expect(rows_after == rows, f"rows lost: {rows} before, {rows_after} after")
        expect(queued_after == queued, f"queued jobs lost: {queued} before, {queued_after} after")
    with step("--scale worker=3: the queued jobs run"):
        stack.compose("up", "-d", "--no-build", "--scale", "worker=3")
        took = api.wait_all_completed([task_id for task_id in ids if task_id])
        say(f"all {QUEUED_TASKS} completed in {took:.1f} s; {api.counts()}")
    return api


#: A partition longer than three leases (TASK_LEASE_SECONDS is 10 s in the image's settings).
PARTITION_TASKS = 300
CUT_SECONDS = 30.0
#: What a worker logs when the compare-and-set refuses a late result (recovery/attempts.py).
REFUSED_LINE = "no longer running here"


def container_logs(name: str) -> str:
    """Everything a container wrote, stdout and stderr together."""
    return subprocess.run(["docker", "logs", name], text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout


def submit_many(api: Api, rng: random.Random, count: int) -> list[str]:
    """Submit ``count`` random tasks one after another; the ids of those accepted."""
    answers = (api.submit(random_body(rng)) for _ in range(count))
    return [task_id for status, task_id in answers if status == 202 and task_id]


def pool_name(container: str) -> str:
    """The name the pool in ``container`` gave itself (its tasks' ``worker`` is ``NAME-<n>``)."""
    for line in container_logs(container).splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("event") == "pool starting":
                return str(entry["worker"])
    raise ScenarioFailed(f"{container} never logged 'pool starting'")


def partition(stack: Stack, api: Api) -> None:
    with step(f"{PARTITION_TASKS} tasks while a worker is cut off the network for {CUT_SECONDS:.0f} s"):
        victim = stack.containers("worker")[0]
        name, started_at = victim["Name"].lstrip("/"), victim["State"]["StartedAt"]
        network = next(iter(victim["NetworkSettings"]["Networks"]))
        mine = pool_name(name) + "-"
        rng = random.Random(7)
        ids = [
            task_id
            for status, task_id in (api.submit(random_body(rng)) for _ in range(PARTITION_TASKS))
            if status == 202 and task_id
        ]

        def held_by_victim() -> list[str] | None:
            running = api.client.get("/tasks", params={"status": "running", "limit": 100}).json()["items"]
            return [t["id"] for t in running if str(t["worker"]).startswith(mine)] or None

        held = wait_for(held_by_victim, 60, f"{name} in the middle of a task", interval=0.05)
        stack.docker("network", "disconnect", network, name)
        cut_at = time.monotonic()

        def taken_over() -> bool | None:
            tasks = [api.task(task_id) for task_id in held]
            return all(t["status"] != "running" or not str(t["worker"]).startswith(mine) for t in tasks) or None

        wait_for(taken_over, CUT_SECONDS, "its tasks taken over by the other workers", interval=0.5)
        takeover = time.monotonic() - cut_at
        time.sleep(max(0.0, CUT_SECONDS - takeover))
        stack.docker("network", "connect", network, name)
        took = api.wait_all_completed(ids)
        refused = container_logs(name).count(REFUSED_LINE)
        after = submit_many(api, rng, 60)
        api.wait_all_completed(after)
        again = stack.containers("worker")
        same = [c for c in again if c["Name"].lstrip("/") == name]
        expect(bool(same) and same[0]["State"]["StartedAt"] == started_at, f"{name} was restarted")

        def back_at_work() -> bool | None:
            more = submit_many(api, rng, 30)
            api.wait_all_completed(more)
            return any(str(api.task(task_id)["worker"]).startswith(mine) for task_id in more) or None

        wait_for(back_at_work, 120, f"{name} running tasks again after the heal", interval=1.0)
        say(
            f"{len(ids)} tasks; {name} cut off {CUT_SECONDS:.0f} s holding {len(held)}, taken over in {takeover:.1f} s; "
            f"{refused} late write(s) refused; all completed {took:.1f} s after the heal; "
            f"the same container (no restart) ran tasks again"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phase6_docker.ci.scenario")
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--image", default="tasklab-phase6:ci")
    args = parser.parse_args(argv)
    api_port, prometheus_port = free_port(), free_port()
    keys = write_deployment_files(
        args.work_dir / ".env",
        args.work_dir / "secrets",
        ["verify", "load"],
        overrides={
            "API_PORT": str(api_port),
            "PROMETHEUS_PORT": str(prometheus_port),
            "TASK_TIME_SCALE": "0.02",
            "TASKLAB_IMAGE": args.image,
            "PROMETHEUS_API_KEY_FILE": str(args.work_dir / "secrets" / "prometheus_api_key"),
        },
    )
    api_url, prometheus_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{prometheus_port}"
    stack = Stack(args.work_dir / ".env", args.image)
    started = time.monotonic()
    try:
        check_image(stack)
        start_and_verify(stack, api_url, prometheus_url, keys["verify"])
        api = Api(api_url, keys["load"])
        chaos(stack, api)
        drain(stack, api)
        api = persistence(stack, api, api_url, keys["load"])
        partition(stack, api)
    except ScenarioFailed as exc:
        print(f"\nFAILED: {exc}", flush=True)
        for service in ("api", "worker", "schema", "redis", "postgres", "prometheus"):
            print(
                f"\n--- logs: {service} (last 30 lines)\n"
                + stack.compose("logs", "--no-color", "--tail", "30", service, check=False)
            )
        return 1
    finally:
        stack.compose("down", "--volumes", check=False)
    print(f"\nevery must-show step passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
