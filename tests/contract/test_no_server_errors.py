"""No input gets a 500: a schemathesis run against each phase's own OpenAPI schema.

A 500 means the server met an input it had not thought about (an ``offset`` so large that it
overflowed the database's integer was one). schemathesis reads the phase's ``/openapi.json``
from its real server and sends it requests built from that schema, valid and deliberately
invalid: the schema's examples, then values on and just past every boundary the schema states
(its "coverage" phase), then random ones. The one check, ``not_a_server_error``, fails on any
5xx. A 503 is the contract's answer for an unreachable store, but the database and Redis are up
here, so any 5xx is a bug.

The run is bounded and repeatable: deterministic generation (the same requests every run), a
few random examples per operation, no shrinking (a failure shows the request that broke the
server instead of spending minutes looking for a smaller one). It is schemathesis' own command
line, run as a user would run it; its report is the failure message.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import ServedPhase

#: Random examples per operation, after the examples and boundary ("coverage") phases.
FUZZ_EXAMPLES_PER_OPERATION = 25
#: Each request's timeout: a server that hangs on an input is a failure, not a stuck suite.
FUZZ_REQUEST_TIMEOUT_SECONDS = 10
#: The whole run's limit; one phase takes a few seconds.
FUZZ_RUN_TIMEOUT_SECONDS = 90
#: Stateful testing chains calls through OpenAPI links; the schemas declare none.
FUZZ_PHASES = "examples,coverage,fuzzing"
#: The end of the report is where schemathesis lists failures and how to reproduce them.
REPORT_TAIL_CHARS = 6000


def test_no_request_gets_a_server_error(served: ServedPhase, tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{served.base_url}/openapi.json",
        "--checks", "not_a_server_error",
        "--phases", FUZZ_PHASES,
        "--generation-deterministic",
        "--no-shrink",
        "--max-examples", str(FUZZ_EXAMPLES_PER_OPERATION),
        "--request-timeout", str(FUZZ_REQUEST_TIMEOUT_SECONDS),
        "--no-color",
    ]  # fmt: skip
    for name, value in served.headers.items():  # phase 6: a key on every request, so the fuzz reaches the routes
        command += ["--header", f"{name}: {value}"]

    # In a scratch folder: schemathesis may write its cache or reports into the current one.
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=FUZZ_RUN_TIMEOUT_SECONDS)

    report = (run.stdout + run.stderr)[-REPORT_TAIL_CHARS:]
    assert run.returncode == 0, f"schemathesis failed on phase {served.phase.number} (exit {run.returncode}):\n{report}"
