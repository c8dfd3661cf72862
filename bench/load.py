"""A closed-loop HTTP load on loopback: N clients, each sending its next request on an answer.

Closed loop, fixed concurrency: at most ``concurrency`` requests are in flight, so the server is
measured at a known load instead of being flooded until it times out. Bounded twice: a request
count and a time cap, whichever comes first. Each request's latency is taken by the client
around the whole exchange on a kept-alive connection (send, server time, receive).

The client is in this process, on the same machine as the server: on 2 cores the two compete
for CPU, so the client must cost far less than what it measures. httpx does not: its async
client spends 1–2 ms of CPU per request at 16 concurrent requests (its connection pool is
the cost), so the floor measured with it was the client's limit (about 500 req/s) and not the
server's (about 5,000). Each client here is therefore one HTTP/1.1 keep-alive connection on
asyncio streams (:class:`HttpConnection`, about 50 µs of CPU per request): real sockets, real
HTTP, parsed by the real uvicorn. :class:`LoadSample` records the client's CPU use so the
report shows when the client, not the server, was the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bench.config import ACCEPTED

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: A single request slower than this is a hang, not a measurement.
REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass
class LoadSample:
    """What one or more load runs against one endpoint produced; :meth:`merge` pools rounds."""

    ok: int = 0
    errors: int = 0
    elapsed_seconds: float = 0.0
    client_cpu_seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    first_error: str | None = None

    def merge(self, other: LoadSample) -> None:
        self.ok += other.ok
        self.errors += other.errors
        self.elapsed_seconds += other.elapsed_seconds
        self.client_cpu_seconds += other.client_cpu_seconds
        self.latencies_ms += other.latencies_ms
        self.first_error = self.first_error or other.first_error

    @property
    def requests_per_second(self) -> float:
        return self.ok / self.elapsed_seconds if self.elapsed_seconds else float("nan")

    @property
    def client_cpu_share(self) -> float:
        """The client's CPU time over wall time: near 1.0 means it kept a whole core busy."""
        return self.client_cpu_seconds / self.elapsed_seconds if self.elapsed_seconds else float("nan")

    def percentile_ms(self, percent: int) -> float:
        """The ``percent``-th percentile of the latencies (interpolated between samples)."""
        if not self.latencies_ms:
            return float("nan")
        if len(self.latencies_ms) == 1:
            return self.latencies_ms[0]
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[percent - 1]


def require_loopback(base_url: str) -> None:
    """Refuse to load anything but this machine: a benchmark must never hit a real service."""
    host = urlsplit(base_url).hostname
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"the benchmark only loads loopback addresses, not {host!r}")


class HttpConnection:
    """One HTTP/1.1 keep-alive connection that POSTs a fixed body and reads the answer.

    Just enough HTTP for a benchmark against our own server: a request written in one go, a
    status line, headers, and a body framed by ``Content-Length`` or chunked encoding.
    """

    def __init__(self, host: str, port: int, path: str, body: bytes) -> None:
        self.host, self.port = host, port
        self.request = (
            f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        ).encode() + body
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self) -> tuple[int, bytes]:
        """Send the request (connecting first if needed) and return the status and body."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(self.request)
        status_line = await self._reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, closing = 0, False, False
        while (line := await self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value
            elif name == b"connection":
                closing = value == b"close"
        body = await self._read_chunked() if chunked else await self._reader.readexactly(length)
        if closing:
            await self.close()
        return status, body

    async def _read_chunked(self) -> bytes:
        assert self._reader is not None
        parts = []
        while size := int((await self._reader.readline()).split(b";")[0], 16):
            parts.append(await self._reader.readexactly(size))
            await self._reader.readline()  # the CRLF after each chunk
        await self._reader.readline()  # the CRLF after the last, empty chunk
        return b"".join(parts)

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _load(
    url: str,
    body: bytes,
    *,
    concurrency: int,
    requests: int,
    time_cap_seconds: float,
    on_answer: Callable[[], None] | None,
) -> LoadSample:
    sample = LoadSample()
    issued = 0
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    connections = [HttpConnection(host, port, parts.path, body) for _ in range(concurrency)]
    started = time.perf_counter()
    cpu_started = time.process_time()
    deadline = started + time_cap_seconds

    async def one_client(connection: HttpConnection) -> None:
        nonlocal issued
        while issued < requests and time.perf_counter() < deadline:
            issued += 1
            sent = time.perf_counter()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
                    status, answer = await connection.post()
            except (OSError, ValueError, IndexError, TimeoutError, asyncio.IncompleteReadError) as exc:
                sample.errors += 1
                sample.first_error = sample.first_error or f"{type(exc).__name__}: {exc}"
                await connection.close()  # a fresh connection for the next request
                if on_answer is not None:
                    on_answer()
                continue
            latency_ms = (time.perf_counter() - sent) * 1000
            if status == ACCEPTED:
                sample.ok += 1
                sample.latencies_ms.append(latency_ms)
            else:
                sample.errors += 1
                sample.first_error = sample.first_error or f"HTTP {status}: {answer[:200].decode(errors='replace')}"
            if on_answer is not None:
                on_answer()

    try:
        await asyncio.gather(*(one_client(connection) for connection in connections))
    finally:
        sample.elapsed_seconds = time.perf_counter() - started
        sample.client_cpu_seconds = time.process_time() - cpu_started
        for connection in connections:
            await connection.close()
    return sample


def run_load(
    base_url: str,
    path: str,
    payload: dict[str, Any],
    *,
    concurrency: int,
    requests: int,
    time_cap_seconds: float,
    on_answer: Callable[[], None] | None = None,
) -> LoadSample:
    """POST ``payload`` as JSON to ``base_url + path``, ``requests`` times at most, and time it.

    The body is encoded once: the client's per-request work is the HTTP exchange, not JSON.
    Connections are opened inside the measured time, once per client, then kept alive.
    """
    require_loopback(base_url)
    body = json.dumps(payload).encode()
    return asyncio.run(
        _load(
            base_url + path,
            body,
            concurrency=concurrency,
            requests=requests,
            time_cap_seconds=time_cap_seconds,
            on_answer=on_answer,
        )
    )
