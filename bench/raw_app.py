"""A plain Celery app with the same no-op tasks, the baseline Celerity is compared with.

Redis (``BENCH_RAW_URL``, db 1 by default) is both broker and result backend,
with the same reliability settings as Celerity: late acks, one prefetched
message per process, requeue when a worker process is lost.
"""

from __future__ import annotations

import os

from celery import Celery

RAW_QUEUE = "raw"
DEFAULT_URL = "redis://127.0.0.1:6379/1"


def make_app(url: str) -> Celery:
    """A Celery app using ``url`` as broker and result backend."""
    app = Celery("bench_raw", broker=url, backend=url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_reject_on_worker_lost=True,
        broker_transport_options={"visibility_timeout": 3600},
        broker_connection_retry_on_startup=True,
        task_default_queue=RAW_QUEUE,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
    )
    return app


app = make_app(os.environ.get("BENCH_RAW_URL", DEFAULT_URL))


@app.task(name="bench.noop")
def noop(x: int) -> int:
    """Return ``x`` unchanged."""
    return x


@app.task(name="bench.step")
def step(x: int) -> int:
    """Return ``x + 1``: one hop of a chain."""
    return x + 1


@app.task(name="bench.total")
def total(values: list[int]) -> int:
    """Sum the values: the chord callback."""
    return sum(values)
