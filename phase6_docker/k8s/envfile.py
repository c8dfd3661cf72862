"""``python -m phase6_docker.k8s.envfile --overlay dev|production``: the Secret's values for an overlay.

Kustomize reads files only inside a kustomization's own folder, so each overlay's secret
generator reads ``overlays/<overlay>/secrets.env`` (ignored by git), written here from the values
Compose's ``.env`` holds (``python -m phase6_docker.envfile`` makes it, ``make compose-env``) and
Prometheus's key beside it (``secrets/prometheus_api_key``). The URLs the containers read are
composed here:

* ``dev``: PostgreSQL and Redis run in the cluster (``overlays/dev``), so the URLs name their
  Services and carry Compose's passwords;
* ``production``: they run elsewhere, so their URLs are given, as ``K8S_DATABASE_URL`` and
  ``K8S_REDIS_URL`` in the environment (a URL with a password stays off the command line).

KEDA's Redis scaler wants an address and a password, not a URL: both are taken from the Redis URL.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

K8S = Path(__file__).parent
PHASE6 = K8S.parent
OVERLAYS = ("dev", "production")
#: The file each overlay's secretGenerator reads (its kustomization.yaml), beside it.
SECRETS_ENV = "secrets.env"
#: overlays/dev's Services (postgres.yaml, redis.yaml): the hosts of the URLs composed for it.
DEV_POSTGRES_HOST = "postgres"
DEV_REDIS_HOST = "redis"
POSTGRES_PORT = 5432
REDIS_PORT = 6379
#: Compose's defaults for the values its .env may leave out (compose.yaml: ${POSTGRES_USER:-tasklab}).
COMPOSE_DEFAULTS = {"POSTGRES_USER": "tasklab", "POSTGRES_DB": "tasklab"}
#: KEDA's triggers read Redis database 0 (their default databaseIndex), where phase 6 keeps its queues.
REDIS_DATABASE = 0


class EnvFileError(ValueError):
    """A value is missing or unusable; the message says which and how to fix it."""


def read_env(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of a Compose ``.env`` (comments and blank lines skipped, quotes removed)."""
    if not path.exists():
        raise EnvFileError(f"{path} does not exist: run `make compose-env` (python -m phase6_docker.envfile) first")
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, equals, value = line.strip().partition("=")
        if equals and name and not name.startswith("#"):
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[name.strip()] = value
    return values


def required(values: dict[str, str], name: str, where: str) -> str:
    value = values.get(name) or COMPOSE_DEFAULTS.get(name, "")
    if not value:
        raise EnvFileError(f"{name} is not set in {where}")
    return value


def redis_for_keda(url: str) -> dict[str, str]:
    """``REDIS_ADDRESS`` (host:port), ``REDIS_PASSWORD`` and ``REDIS_TLS`` (``enable``/``disable``) of a Redis URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise EnvFileError(f"the Redis URL must be redis://… or rediss://… with a host, not {parts.scheme}://…")
    if parts.username:
        raise EnvFileError("a Redis ACL user in the URL: give base/autoscaling.yaml's TriggerAuthentication a `username` first")
    database = parts.path.strip("/") or str(REDIS_DATABASE)
    if database != str(REDIS_DATABASE):
        raise EnvFileError(f"the Redis URL names database {database}: KEDA's triggers read database {REDIS_DATABASE}")
    return {
        "REDIS_ADDRESS": f"{parts.hostname}:{parts.port or REDIS_PORT}",
        "REDIS_PASSWORD": unquote(parts.password or ""),
        "REDIS_TLS": "enable" if parts.scheme == "rediss" else "disable",
    }


def overlay_values(
    overlay: str,
    compose: dict[str, str],
    prometheus_key: str,
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
) -> dict[str, str]:
    """Every key of the overlay's Secret, by name (the manifests read exactly these)."""
    where = "Compose's .env"
    values = {"API_KEY_HASHES": required(compose, "API_KEY_HASHES", where), "PROMETHEUS_API_KEY": prometheus_key.strip()}
    if overlay == "dev":
        user, password, name = (required(compose, key, where) for key in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"))
        redis_password = required(compose, "REDIS_PASSWORD", where)
        values |= {"POSTGRES_USER": user, "POSTGRES_PASSWORD": password, "POSTGRES_DB": name}
        credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
        database_url = f"postgresql+psycopg://{credentials}@{DEV_POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
        redis_url = f"redis://:{quote(redis_password, safe='')}@{DEV_REDIS_HOST}:{REDIS_PORT}/{REDIS_DATABASE}"
    elif not database_url or not redis_url:
        raise EnvFileError("production needs K8S_DATABASE_URL and K8S_REDIS_URL: PostgreSQL and Redis are outside the cluster")
    if not values["PROMETHEUS_API_KEY"]:
        raise EnvFileError("Prometheus's API key is empty: run `make compose-env` again")
    values |= {"DATABASE_URL": database_url, "REDIS_URL": redis_url, **redis_for_keda(redis_url)}
    for name, value in values.items():
        if "\n" in value or value != value.strip():
            raise EnvFileError(f"{name} has a line break or surrounding spaces, which an env file cannot hold")
    return values


def write_secrets_env(k8s_dir: Path, overlay: str, values: dict[str, str]) -> Path:
    """Write ``overlays/<overlay>/secrets.env`` (mode 600) and return its path."""
    path = k8s_dir / "overlays" / overlay / SECRETS_ENV
    header = "# Written by `make k8s-env` (python -m phase6_docker.k8s.envfile). Secret: never commit it (git ignores it).\n"
    path.write_text(header + "".join(f"{name}={value}\n" for name, value in sorted(values.items())))
    path.chmod(0o600)
    return path


def main(argv: list[str] | None = None) -> int:
    description = __doc__.splitlines()[0].split(": ", 1)[1]
    parser = argparse.ArgumentParser(prog="python -m phase6_docker.k8s.envfile", description=description)
    parser.add_argument("--overlay", choices=OVERLAYS, default="dev", help="which overlay's secrets.env to write (default: dev)")
    parser.add_argument("--compose-env", type=Path, default=PHASE6 / ".env", help="Compose's .env (default: phase6_docker/.env)")
    parser.add_argument("--secrets-dir", type=Path, default=PHASE6 / "secrets", help="default: phase6_docker/secrets")
    parser.add_argument("--k8s-dir", type=Path, default=K8S, help="the manifests (default: phase6_docker/k8s)")
    args = parser.parse_args(argv)
    try:
        key_file = args.secrets_dir / "prometheus_api_key"
        if not key_file.exists():
            raise EnvFileError(f"{key_file} does not exist: run `make compose-env` first")
        values = overlay_values(
            args.overlay,
            read_env(args.compose_env),
            key_file.read_text(),
            database_url=os.environ.get("K8S_DATABASE_URL"),
            redis_url=os.environ.get("K8S_REDIS_URL"),
        )
    except EnvFileError as exc:
        parser.error(str(exc))
    path = write_secrets_env(args.k8s_dir, args.overlay, values)
    print(f"wrote {path} ({len(values)} keys: {', '.join(sorted(values))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
