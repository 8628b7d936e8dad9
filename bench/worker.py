"""One benchmark worker process: ``python -m bench.worker {celerity,raw} -c 2 --ready FILE``.

Both kinds run a prefork Celery worker without mingle, gossip and heartbeat, and
touch ``--ready`` once Celery reports the worker ready to consume.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from celery.signals import worker_ready

QUIET_FLAGS = ["--without-mingle", "--without-gossip", "--without-heartbeat"]
# What `celerity worker start -E` gives a Celerity worker (workers.main.EVENTS_FLAGS).
EVENTS_FLAGS = ["--without-mingle", "--without-gossip", "--task-events"]


def _touch_when_ready(path: str) -> None:
    """Create ``path`` when this process's Celery worker is ready."""

    def ready(**_: Any) -> None:
        Path(path).touch()

    worker_ready.connect(ready, weak=False)


def run_celerity(concurrency: int) -> None:
    """Run a Celerity task-run worker on the default queue (blocks)."""
    import bench.tasks  # noqa: F401  (loaded before the fork, as a deployment would)
    from workers.main import start_worker

    start_worker(["celerity"], concurrency, "prefork", loglevel="WARNING")


def run_raw(concurrency: int) -> None:
    """Run a plain Celery worker for ``bench.raw_app`` (blocks)."""
    from bench.raw_app import RAW_QUEUE, app

    app.worker_main([
        "worker", "-Q", RAW_QUEUE, "-c", str(concurrency), "-P", "prefork",
        "--loglevel", "WARNING", "-n", f"bench-raw-{os.getpid()}@%h", *_flags(),
    ])


def _flags() -> list[str]:
    """Events as the Celerity workers of the same run have them (``--events``)."""
    events = os.environ.get("CELERITY_WORKER_EVENTS", "").lower() in ("1", "true", "yes")
    return EVENTS_FLAGS if events else QUIET_FLAGS


def main() -> None:
    """Parse the command line and run the worker."""
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("system", choices=["celerity", "raw"])
    parser.add_argument("-c", "--concurrency", type=int, default=2)
    parser.add_argument("--ready", required=True, help="file to create once ready")
    args = parser.parse_args()
    _touch_when_ready(args.ready)
    (run_celerity if args.system == "celerity" else run_raw)(args.concurrency)


if __name__ == "__main__":
    main()
