"""``python -m phase6_docker.envfile``: write a deployment's ``.env`` and secrets, fresh and random.

Compose reads ``.env`` beside ``compose.yaml``; Prometheus reads its API key from
``secrets/prometheus_api_key``. Both are made here, never committed (``.gitignore``), from
``.env.example`` with every placeholder replaced: random passwords, and API keys of which only
the SHA-256 digests go into ``.env``. The keys in clear are printed once, for you to hand out.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
from pathlib import Path

from .security import hash_key, new_key
from .settings import KEY_NAME

HERE = Path(__file__).parent
#: Passwords go into URLs (DATABASE_URL, REDIS_URL): token_hex never needs escaping there.
PASSWORD_BYTES = 24


def render_env(example: str, values: dict[str, str]) -> str:
    """``.env.example`` with the value of every ``NAME=`` line in ``values`` replaced (comments kept)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"{name}={values[name]}" if name in values else match.group(0)

    return re.sub(r"^([A-Z_]+)=.*$", replace, example, flags=re.MULTILINE)


def write_deployment_files(
    env_path: Path,
    secrets_dir: Path,
    key_names: list[str],
    overrides: dict[str, str] | None = None,
) -> dict[str, str]:
    """Write ``env_path`` and ``secrets_dir/prometheus_api_key``; return the new keys by name.

    A key named ``prometheus`` is always made: Prometheus needs one to scrape the API.
    """
    names = list(dict.fromkeys([*key_names, "prometheus"]))
    keys = {name: new_key() for name in names}
    values = {
        "POSTGRES_PASSWORD": secrets.token_hex(PASSWORD_BYTES),
        "REDIS_PASSWORD": secrets.token_hex(PASSWORD_BYTES),
        "API_KEY_HASHES": ",".join(f"{name}:{hash_key(key)}" for name, key in keys.items()),
        **(overrides or {}),
    }
    text = render_env((HERE / ".env.example").read_text(), values)
    missing = {name: value for name, value in values.items() if f"\n{name}=" not in f"\n{text}"}
    text += "".join(f"{name}={value}\n" for name, value in missing.items())
    env_path.parent.mkdir(parents=True, exist_ok=True)
    env_path.write_text(text)
    env_path.chmod(0o600)
    secrets_dir.mkdir(parents=True, exist_ok=True)
    key_file = secrets_dir / "prometheus_api_key"
    key_file.write_text(keys["prometheus"])
    # Readable by the Prometheus container's user (nobody): Compose bind-mounts the file as it is.
    key_file.chmod(0o644)
    return keys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m phase6_docker.envfile", description=__doc__.splitlines()[0].split(": ", 1)[1]
    )
    parser.add_argument("--env-file", type=Path, default=HERE / ".env", help="where to write (default: phase6_docker/.env)")
    parser.add_argument("--secrets-dir", type=Path, default=HERE / "secrets", help="default: phase6_docker/secrets")
    parser.add_argument(
        "--key", action="append", default=[], metavar="NAME", help="an API key to make (repeatable; default: admin)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing env file (its keys and passwords are lost)")
    args = parser.parse_args(argv)
    for name in args.key:
        if not KEY_NAME.fullmatch(name):
            parser.error(f"key name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-'")
    if args.env_file.exists() and not args.force:
        parser.error(f"{args.env_file} exists; pass --force to replace it (the stack's volumes keep the old passwords)")
    keys = write_deployment_files(args.env_file, args.secrets_dir, args.key or ["admin"])
    print(f"wrote {args.env_file} and {args.secrets_dir / 'prometheus_api_key'}")
    for name, key in keys.items():
        if name != "prometheus":
            print(f"API key {name}: {key}")
    print("Keep these keys: only their SHA-256 digests are stored.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
