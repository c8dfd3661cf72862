"""``make run PHASE=N`` / ``python -m tasklab_cli.run --phase N``: one phase, in the foreground.

Starts what the phase needs (a private Redis unless ``REDIS_URL`` is set), its API on
http://127.0.0.1:8000 and its workers, shows their logs in this terminal, and stops all of
them on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from tasklab_cli.processes import PHASES, phase
from tasklab_cli.stack import PhaseStack

DEFAULT_PORT = 8000
STATE_DIR = Path(".tasklab")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tasklab_cli.run",
        description="Run one tasklab phase (API + workers) in the foreground; Ctrl-C stops everything.",
        epilog="Environment: DATABASE_URL (default: sqlite file .tasklab/phaseN.db), REDIS_URL "
        "(default: a private redis-server), TASK_TIME_SCALE (default 1). See shared/settings.py.",
    )
    parser.add_argument("--phase", required=True, choices=[str(n) for n in sorted(PHASES)], help="which phase to run")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes to start (phases with a worker; phase 5: one pool of that many; default 1)",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"API port on 127.0.0.1 (default {DEFAULT_PORT})")
    return parser.parse_args(argv)


def stop_on_sigterm() -> None:
    """Treat SIGTERM (``kill``, ``timeout``, a process manager) like Ctrl-C: stop children first."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    chosen = phase(args.phase)
    STATE_DIR.mkdir(exist_ok=True)
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{STATE_DIR / f'phase{chosen.number}.db'}"
    stack = PhaseStack(chosen, workers=args.workers, database_url=database_url, port=args.port, quiet=False)
    try:
        with stack:
            print(f"\nphase {chosen.number} ({chosen.package}) is running")
            print(f"  API      {stack.api.base_url if stack.api else '?'}   (interactive docs: /docs)")
            print(f"  database {database_url}")
            if chosen.has_worker:
                print(f"  redis    {stack.redis_url}")
                print(f"  workers  {', '.join(str(w.pid) for w in stack.worker_processes)}")
            if chosen.has_metrics and stack.api:
                print(f"  dashboard {stack.api.base_url}/dashboard   stats: /stats")
                print(
                    f"  metrics   {stack.api.base_url}/metrics"
                    + "".join(f"  http://127.0.0.1:{p}/metrics" for p in stack.metrics_ports)
                )
            print("Ctrl-C stops everything.\n", flush=True)
            while not (dead := stack.dead_processes()):
                time.sleep(0.5)
            for process in dead:
                print(f"{process.name} exited with {process.process.returncode}; stopping the rest", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        print("\nstopping …", flush=True)
        return 0


if __name__ == "__main__":
    sys.exit(main())
