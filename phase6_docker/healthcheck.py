"""``python -m phase6_docker.healthcheck [URL]``: the image's ``HEALTHCHECK``, without curl.

The final image carries no curl or wget (fewer binaries, fewer CVEs); the Python it already
has can fetch a URL. Exit 0 on a 2xx answer within the timeout, 1 otherwise, as Docker expects.
The API checks ``/health`` (the default); Compose points the worker at its metrics port, which
answers as long as the pool's supervisor lives: ``HEALTHCHECK_URL``.
"""

from __future__ import annotations

import os
import sys
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8000/health"
#: Docker's own timeout is longer (see the Dockerfile): this one makes the probe say why.
TIMEOUT_SECONDS = 3


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    url = args[0] if args else os.environ.get("HEALTHCHECK_URL", DEFAULT_URL)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - a fixed local URL
            return 0 if 200 <= response.status < 300 else 1
    except OSError as exc:  # refused, timed out, or an HTTP error status
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
