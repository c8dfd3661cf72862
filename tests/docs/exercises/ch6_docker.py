"""Chapter 6, exercises 1 to 3: audit compose.yaml, check a .env before `up`, and wait as a 429 says.

None of them needs Docker: the compose file and the Dockerfile are read as text, and the rate
limit is the phase 6 app's own, in front of a real Redis.
"""

from __future__ import annotations

import io
import ipaddress
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml
from dotenv import dotenv_values

PHASE6 = Path(__file__).resolve().parents[3] / "phase6_docker"

#: A Compose interpolation: ``${NAME}``, ``${NAME:-default}``, ``${NAME-default}``, ``${NAME:?message}``,
#: ``${NAME?message}``. ``$$`` is a literal dollar (the healthcheck's ``$$POSTGRES_USER``), not one.
INTERPOLATION = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<operator>:?[-?+])(?P<argument>[^}]*))?\}")

HealthSource = Literal["compose", "Dockerfile", "disabled", "none"]


def load_compose(path: Path = PHASE6 / "compose.yaml") -> dict[str, Any]:
    """The compose file as data; PyYAML's ``safe_load`` resolves the ``<<: *app`` merges."""
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


# Exercise 1 --------------------------------------------------------------------------------


def with_defaults(text: str) -> str:
    """``text`` as Compose reads it with no variable set: ``${API_PORT:-8000}`` becomes ``8000``."""
    return INTERPOLATION.sub(lambda match: match["argument"] if match["operator"] in (":-", "-") else "", text)


def host_address(port: object) -> str:
    """The host address a ``ports:`` entry binds, ``""`` when it names none (every interface).

    Short syntax is ``[ADDRESS:]HOST:CONTAINER[/PROTOCOL]``, or a container port alone. Variables
    are replaced by their defaults *first*: ``${API_PORT:-8000}:8000`` has four colons but no address.
    Splitting from the right keeps an IPv6 address whole (``::1:9090:9090``, ``[::1]:9090:9090``).
    """
    if isinstance(port, Mapping):  # long syntax: {target: 8000, published: "8000", host_ip: "127.0.0.1"}
        return with_defaults(str(port.get("host_ip", "")))
    fields = with_defaults(str(port)).split("/", 1)[0].rsplit(":", 2)
    return fields[0].strip("[]") if len(fields) == 3 else ""


def reachable_from_other_machines(port: object) -> bool:
    """True unless the port is bound to a loopback address: no address and ``0.0.0.0`` mean every interface."""
    address = host_address(port)
    try:
        return not address or not ipaddress.ip_address(address).is_loopback
    except ValueError:  # a host name, or a variable with no default: assume the worst
        return True


def published_to_the_network(compose: Mapping[str, Any]) -> list[str]:
    """The services with a port other machines can reach: what an API key and a firewall must cover."""
    services: dict[str, Any] = compose["services"]
    return sorted(name for name, service in services.items() if any(map(reachable_from_other_machines, service.get("ports", []))))


def dockerfile_has_healthcheck(dockerfile: Path) -> bool:
    """Whether the image a Dockerfile builds carries a ``HEALTHCHECK`` (other than ``HEALTHCHECK NONE``).

    Only the final stage counts: an instruction in a build stage does not reach the image that runs.
    (A base image's own ``HEALTHCHECK`` is inherited too; ``python:3.11-slim`` has none.)
    """
    final_stage = re.split(r"^\s*FROM\s", dockerfile.read_text(), flags=re.MULTILINE | re.IGNORECASE)[-1]
    checks = re.findall(r"^\s*HEALTHCHECK\s+(\S+)", final_stage, flags=re.MULTILINE | re.IGNORECASE)
    return bool(checks) and checks[-1].upper() != "NONE"


def health_checks(compose: Mapping[str, Any], compose_dir: Path = PHASE6) -> dict[str, HealthSource]:
    """Where each service's health check comes from.

    ``compose``: its own ``healthcheck:``. ``Dockerfile``: none in the compose file, but the image
    it builds has a ``HEALTHCHECK``, which every container of that image runs. ``disabled``:
    ``disable: true`` (or ``test: ["NONE"]``) turns off even the image's. ``none``: nothing we can
    see without Docker (an image pulled from a registry might still carry one).
    """
    sources: dict[str, HealthSource] = {}
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        build = service.get("build")
        if check is not None:
            sources[name] = "disabled" if check.get("disable") or check.get("test") in (["NONE"], "NONE") else "compose"
        elif build is not None:
            context, dockerfile = (build, "Dockerfile") if isinstance(build, str) else (build["context"], build["dockerfile"])
            sources[name] = "Dockerfile" if dockerfile_has_healthcheck(compose_dir / context / dockerfile) else "none"
        else:
            sources[name] = "none"
    return sources


# Exercise 2 --------------------------------------------------------------------------------


def values_in(node: object) -> Iterator[str]:
    """Every string value of a loaded YAML document: where Compose interpolates (comments are gone)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from values_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from values_in(item)


def missing_variables(env_text: str, compose: Mapping[str, Any]) -> list[str]:
    """The variables ``compose`` requires that ``env_text`` (a ``.env``) leaves unset, or empty where that counts.

    ``${NAME:?…}`` refuses an unset *or empty* value, ``${NAME?…}`` only an unset one: the same
    test Compose runs at ``up``, here before anything starts. The requirements are read from the
    compose file, not listed by hand, so a new required variable is checked without a change here.
    ``interpolate=False``: a value is taken as written, never expanded from this shell's variables.
    """
    env = dotenv_values(stream=io.StringIO(env_text), interpolate=False)
    missing: set[str] = set()
    for text in values_in(compose):
        for match in INTERPOLATION.finditer(text):
            name, operator = match["name"], match["operator"]
            if (operator == ":?" and not env.get(name)) or (operator == "?" and name not in env):
                missing.add(name)
    return sorted(missing)


# Exercise 3 --------------------------------------------------------------------------------


def submit_politely(client: httpx.Client, body: Mapping[str, Any], *, retries: int = 3) -> tuple[httpx.Response, float]:
    """``POST /tasks``; on a 429, sleep for its ``Retry-After`` and post again. Returns the last answer and the seconds slept.

    ``Retry-After`` (whole seconds here, rounded up by the server) is when the key's next slot
    opens: waiting that long is enough, and posting sooner would only be refused again.
    """
    slept = 0.0
    response = client.post("/tasks", json=dict(body))
    for _ in range(retries):
        if response.status_code != 429:
            break
        pause = float(response.headers["Retry-After"])
        time.sleep(pause)
        slept += pause
        response = client.post("/tasks", json=dict(body))
    return response, slept
