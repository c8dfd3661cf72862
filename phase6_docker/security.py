"""API keys and a rate limit in front of a published API: phase 6's security layer.

Phases 1–5 run on a developer's machine and stay open. Phase 6 publishes port 8000, so:

* **Every route needs an API key** except the probes and the API's documentation (``/docs``,
  ``/redoc``, ``/openapi.json``: the API's shape, which the repository shows anyway).
  ``/metrics``, ``/stats``, ``/dashboard``, ``/ready`` and the task routes answer 401 without
  a key.
* **The probes carry no key**: ``/health`` (liveness: the process answers) and
  ``/ready/accepting`` (readiness: the database and its table answer; :mod:`phase6_docker.api`).
  Docker's health check, Kubernetes' kubelet and load balancers call them, and a probe cannot
  read a key from a Secret (its headers are written in the manifest, in git). They reveal
  nothing secret: a fixed status, and for each of the database and Redis "ok" or the name of
  the exception class that made it "down", never an address, a credential or a task.
* **A key is sent** as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.
* **Keys are stored as SHA-256 digests** (``API_KEY_HASHES``), never in clear: a leaked ``.env``
  or ``docker inspect`` does not leak a usable key. A plain hash is enough, and a slow one
  (bcrypt, argon2) would only cost every request time, because keys are 256-bit random
  tokens (:func:`new_key`): there is no dictionary to try, unlike a person's password.
* **Compared in constant time**, against every stored digest, so the response time tells an
  attacker nothing about how much of a guess was right, or which key it was close to.
* **``POST /tasks`` is rate limited per key**, in Redis (:mod:`phase6_docker.ratelimit`): 429
  with ``Retry-After`` past the limit, and ``RateLimit-*`` headers on every answer.
* **Malformed credentials are the client's error**: a missing, unknown, oversized or
  non-ASCII key gets a 401 with a message saying which, never a 500; headers over 32 KiB in
  all get a 431.

:func:`add_security` fits all of it onto an existing FastAPI app, phase 5's in
:mod:`phase6_docker.api`. ``python -m phase6_docker.security new-key NAME`` makes a key.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .monitoring.logs import get_logger
from .ratelimit import Decision, RateLimiter
from .settings import KEY_NAME, Phase6Settings, load_settings

log = get_logger("phase6_docker.security")

#: Kubernetes' readiness probe (:func:`phase6_docker.api.read_accepting`): 200 while a task can be accepted.
ACCEPTING_PATH = "/ready/accepting"
#: Reachable without a key: the probes (liveness, readiness), and the API's documentation (its shape is no secret).
PUBLIC_PATHS = frozenset({"/health", ACCEPTING_PATH, "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
#: The offline Swagger UI and ReDoc files the documentation pages load (fastapi-offline).
PUBLIC_PREFIXES = ("/static-offline-docs/",)
#: The one rate-limited operation: it writes a row and a job, the expensive thing to flood.
LIMITED = ("POST", "/tasks")
#: A key is 43 characters (:func:`new_key`); anything far longer is refused before it is hashed.
MAX_KEY_LENGTH = 256
#: All request headers together, at most: uvicorn takes any size, and every byte is held in memory
#: for the whole request. 32 KiB is four times nginx's default for one header line.
MAX_HEADER_BYTES = 32 * 1024
#: Bytes of randomness in a new key: 256 bits, beyond any guessing.
KEY_BYTES = 32
#: The realm named in ``WWW-Authenticate``.
REALM = "tasklab"


def hash_key(key: str) -> str:
    """The SHA-256 hex digest of a key: what ``API_KEY_HASHES`` stores."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh API key: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(KEY_BYTES)


class CredentialError(Exception):
    """The request's credentials are missing or unusable; the message says why (a 401)."""

    def __init__(self, message: str, *, presented: bool) -> None:
        super().__init__(message)
        #: A key was sent (RFC 6750: answer ``error="invalid_token"``) or none was.
        self.presented = presented


@dataclass(frozen=True)
class ApiKeys:
    """The accepted keys, as name → SHA-256 digest; finds which one a request presents."""

    digests: dict[str, str]

    def identify(self, key: str) -> str | None:
        """The name of the key whose digest matches ``key``, or ``None``.

        Every stored digest is compared, whatever matched: the loop takes the same time for a
        good key, a bad key and a key close to a good one. ``hmac.compare_digest`` takes the
        same time whatever the first differing byte is.
        """
        presented = hash_key(key).encode()
        found: str | None = None
        for name, digest in self.digests.items():
            if hmac.compare_digest(presented, digest.encode()):
                found = name
        return found


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (ASGI gives names in lower case)."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def presented_key(scope: Scope) -> str:
    """The key a request carries (``Authorization: Bearer`` first, then ``X-API-Key``).

    Raises :class:`CredentialError` with a message for the client: nothing here can raise
    anything else, whatever bytes the headers hold.
    """
    authorization = header(scope, b"authorization")
    if authorization is not None:
        scheme, _, raw = authorization.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            raise CredentialError("Authorization must use the Bearer scheme: 'Authorization: Bearer <key>'", presented=True)
        raw = raw.strip()
    else:
        raw = header(scope, b"x-api-key") or b""
        if not raw:
            raise CredentialError(
                "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'", presented=False
            )
    if len(raw) > MAX_KEY_LENGTH:
        raise CredentialError(f"API key too long: at most {MAX_KEY_LENGTH} characters", presented=True)
    if not raw or not raw.isascii() or not raw.decode("ascii").isprintable():
        raise CredentialError("API key malformed: printable ASCII expected", presented=True)
    return raw.decode("ascii")


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


@dataclass
class Guard:
    """What the middleware consults; built by the app's lifespan from :class:`Phase6Settings`."""

    keys: ApiKeys
    limiter: RateLimiter | None
    period_seconds: float

    async def limit(self, key_name: str) -> Decision | None:
        """Count a limited request; ``None`` (allowed, unlimited) when Redis does not answer.

        Failing open is deliberate: the limit protects capacity, and with Redis down a submit
        still stores its row (the reconciler enqueues it later). Refusing every submit during a
        Redis restart would turn a blip into an outage. The warning makes the gap visible.
        """
        if self.limiter is None:
            return None
        try:
            return await self.limiter.hit(key_name)
        except (RedisError, OSError) as exc:
            log.warning("rate limit unavailable, request allowed", key=key_name, error=f"{type(exc).__name__}: {exc}")
            return None


def unauthorized(error: CredentialError) -> JSONResponse:
    """401 with the RFC 6750 challenge; the description is ours, never echoed client input."""
    challenge = f'Bearer realm="{REALM}"'
    if error.presented:
        challenge += ', error="invalid_token"'
    return JSONResponse({"detail": str(error)}, status_code=401, headers={"WWW-Authenticate": challenge})


class ApiKeyMiddleware:
    """ASGI middleware: authenticate every non-public request, rate-limit ``POST /tasks``.

    A middleware rather than a FastAPI dependency, so it covers every route of the app,
    including those the shared routers add (``/metrics``, ``/stats``, ``/dashboard``), and
    refuses a request before its body is read.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        size = sum(len(name) + len(value) for name, value in scope["headers"])
        if size > MAX_HEADER_BYTES:
            detail = f"request headers too large: {size} bytes, at most {MAX_HEADER_BYTES}"
            await JSONResponse({"detail": detail}, status_code=431)(scope, receive, send)
            return
        if is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        guard: Guard = scope["app"].state.security  # set by the lifespan, before the first request
        try:
            name = guard.keys.identify(presented_key(scope))
            if name is None:
                raise CredentialError("API key not recognised", presented=True)
        except CredentialError as error:
            await unauthorized(error)(scope, receive, send)
            return
        scope.setdefault("state", {})["api_key_name"] = name  # request.state.api_key_name, for the app's logs

        if (scope["method"], scope["path"].rstrip("/") or "/") != LIMITED:
            await self.app(scope, receive, send)
            return
        decision = await guard.limit(name)
        if decision is None:
            await self.app(scope, receive, send)
            return
        extra = decision.headers(guard.period_seconds)
        if not decision.allowed:
            log.info("rate limited", key=name, retry_after=extra["Retry-After"])
            detail = f"rate limit of {decision.limit} task submissions per {guard.period_seconds:g} s exceeded for key {name!r}"
            await JSONResponse({"detail": detail}, status_code=429, headers=extra)(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":  # the client sees its budget on every answer
                message["headers"] = [*message.get("headers", []), *((k.lower().encode(), v.encode()) for k, v in extra.items())]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def insert_middleware(app: FastAPI, after: Iterable[type] = ()) -> None:
    """Put :class:`ApiKeyMiddleware` just inside the outermost middleware of a class in ``after``.

    Inside the request-monitoring middleware, so 401s and 429s get their ``X-Request-ID``, a
    log line and their place in ``tasklab_http_requests_total`` (an operator wants to see a
    flood of refused keys); outside everything else, so nothing reads a body for a refused
    request. ``user_middleware[0]`` is the outermost one.
    """
    classes = tuple(after)
    # Starlette types ``Middleware.cls`` as a factory, not a class: compared as plain objects.
    factories: list[object] = [m.cls for m in app.user_middleware]
    index = next((i + 1 for i, factory in enumerate(factories) if factory in classes), 0)
    app.user_middleware.insert(index, Middleware(ApiKeyMiddleware))


def document_security(app: FastAPI) -> None:
    """Declare both ways to send a key in the OpenAPI schema: ``/docs`` gets an Authorize button."""
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default_openapi()
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
            schema["security"] = [{"bearer": []}, {"apiKey": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def add_security(
    app: FastAPI,
    *,
    load: Callable[[], Phase6Settings] = load_settings,
    after: Iterable[type] = (),
) -> FastAPI:
    """Require API keys on ``app`` and rate-limit its submits; settings are read when it starts.

    The app's own lifespan is kept and runs inside ours: the guard exists before the first
    request and the limiter's Redis connections close after the app's last one.
    """
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = load()
        keys = settings.api_keys
        if not keys:
            # Fail closed and loud: an API without keys would refuse every request, and an
            # operator should learn that at `docker compose up`, not from their clients.
            raise RuntimeError("API_KEY_HASHES is empty: no API key could ever be accepted (see .env.example)")
        redis = None
        if settings.redis_url:
            redis = Redis.from_url(
                settings.redis_url,
                socket_timeout=settings.redis_timeout_seconds,
                socket_connect_timeout=settings.redis_timeout_seconds,
            )
        limiter = RateLimiter(redis, settings.rate_limit_requests, settings.rate_limit_period_seconds) if redis else None
        app.state.security = Guard(ApiKeys(keys), limiter, settings.rate_limit_period_seconds)
        rate = f"{settings.rate_limit_requests} per {settings.rate_limit_period_seconds:g} s"
        log.info("api keys loaded", keys=sorted(keys), rate_limit=rate, rate_limit_shared=limiter is not None)
        try:
            async with inner(app):
                yield
        finally:
            if redis is not None:
                await redis.aclose()

    app.router.lifespan_context = lifespan
    insert_middleware(app, after)
    document_security(app)
    return app


# ----------------------------------------------------------------------------------------------
# python -m phase6_docker.security new-key NAME


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m phase6_docker.security",
        description="Make an API key: prints the key (give it to the client, once) and the "
        "API_KEY_HASHES entry (put it in .env; it cannot be turned back into the key).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("new-key", help="a new random key and its API_KEY_HASHES entry")
    make.add_argument("name", help="the key's name, in logs and in its rate-limit bucket (letters, digits, . _ -)")
    hashed = commands.add_parser("hash", help="the API_KEY_HASHES entry of an existing key (read from stdin)")
    hashed.add_argument("name")
    args = parser.parse_args(argv)
    if not KEY_NAME.fullmatch(args.name):
        parser.error(f"name {args.name!r}: use 1 to 64 letters, digits, '.', '_' or '-'")
    key = new_key() if args.command == "new-key" else sys.stdin.readline().strip()
    if args.command == "new-key":
        print(f"API key (give to the client):   {key}")
    print(f"API_KEY_HASHES entry (for .env): {args.name}:{hash_key(key)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
