"""``celerity worker start``, ``celerity coordinator start`` and ``celerity dev``."""

from __future__ import annotations

import click

from celerity.cli_common import broker_settings, check_broker

LOGLEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False)


@click.group()
def worker() -> None:
    """Run task-run workers."""


@worker.command("start")
@click.option(
    "-q",
    "--queues",
    metavar="QUEUES",
    help="Comma-separated queues to consume (default: the default and routed queues).",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    help="Processes or threads (default: CELERITY_WORKER_CONCURRENCY).",
)
@click.option(
    "--pool",
    type=click.Choice(["prefork", "threads", "solo"]),
    help="Celery pool (default: CELERITY_WORKER_POOL).",
)
@click.option("--loglevel", type=LOGLEVELS, default="INFO", show_default=True)
def worker_start(
    queues: str | None, concurrency: int | None, pool: str | None, loglevel: str
) -> None:
    """Start a worker that runs task runs until stopped (SIGTERM/Ctrl-C)."""
    from workers.main import start_worker

    settings = broker_settings()
    check_broker(settings)
    names = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    start_worker(names, concurrency, pool, loglevel.upper(), settings=settings)


@click.group()
def coordinator() -> None:
    """Run coordinators, which run submitted flow runs."""


@coordinator.command("start")
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Flow runs this coordinator runs at once.",
)
@click.option("--loglevel", type=LOGLEVELS, default="INFO", show_default=True)
def coordinator_start(concurrency: int, loglevel: str) -> None:
    """Start a coordinator consuming the flow queue until stopped (SIGTERM/Ctrl-C)."""
    from workers.main import start_coordinator

    settings = broker_settings()
    check_broker(settings)
    start_coordinator(concurrency, loglevel.upper(), settings=settings)


@click.command()
@click.option(
    "-w",
    "--workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Number of task-run worker processes.",
)
@click.option("--port", type=click.IntRange(1, 65535), help="Redis port (default: a free one).")
def dev(workers: int, port: int | None) -> None:
    """Run a local Redis, workers and a coordinator until Ctrl-C."""
    from workers.dev import DevError, run_dev

    try:
        code = run_dev(workers, port, say=click.echo)
    except DevError as exc:
        raise click.ClickException(str(exc)) from None
    click.get_current_context().exit(code)


COMMANDS = [worker, coordinator, dev]
