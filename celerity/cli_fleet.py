"""``celerity worker start``, ``coordinator start``, ``dev`` and ``key generate``."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from celerity.cli_common import check_broker, fleet_settings

LOGLEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False)
EVENTS_ENV = "CELERITY_WORKER_EVENTS"


def events_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``-E/--events``: task events and heartbeats on, as ``celery worker -E``."""
    return click.option(
        "-E",
        "--events",
        is_flag=True,
        help=f"Send task events and heartbeats for Flower, `celery events` ({EVENTS_ENV}=true).",
    )(command)


def use_events(events: bool) -> None:
    """Turn events on for this process and the processes it starts (flow runs, a dev fleet).

    Through the environment, not an argument, so that every child process the
    worker or coordinator spawns sends its task-sent events too.
    """
    if events:
        from broker_config.settings import reset_settings

        os.environ[EVENTS_ENV] = "true"
        reset_settings()


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
@events_option
def worker_start(
    queues: str | None, concurrency: int | None, pool: str | None, loglevel: str, events: bool
) -> None:
    """Start a worker that runs task runs until stopped (SIGTERM/Ctrl-C)."""
    from workers.main import start_worker

    use_events(events)
    settings = fleet_settings()
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
@events_option
def coordinator_start(concurrency: int, loglevel: str, events: bool) -> None:
    """Start a coordinator consuming the flow queue until stopped (SIGTERM/Ctrl-C)."""
    from workers.main import start_coordinator

    use_events(events)
    settings = fleet_settings()
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
@events_option
def dev(workers: int, port: int | None, events: bool) -> None:
    """Run a local Redis, workers and a coordinator until Ctrl-C."""
    from workers.dev import DevError, run_dev

    use_events(events)
    try:
        code = run_dev(workers, port, say=click.echo)
    except DevError as exc:
        raise click.ClickException(str(exc)) from None
    click.get_current_context().exit(code)


KEY_USAGE = """\
Give every worker, coordinator and submitting process of the fleet this key:

    export CELERITY_SIGNING_KEY={key}

To rotate keys (the first key signs, every key verifies):
  1. add it after the current key on every process, and restart them:
       export CELERITY_SIGNING_KEY=<current key>,{key}
  2. once every process has both, put it first, and restart them again:
       export CELERITY_SIGNING_KEY={key},<current key>
  3. drop the old key once the results written with it have expired
     (CELERITY_RESULT_TTL_SECONDS).
A fleet that restarts all at once can go straight to step 2."""


@click.group()
def key() -> None:
    """Make the signing key a fleet shares (CELERITY_SIGNING_KEY)."""


@key.command("generate")
def key_generate() -> None:
    """Print a new random signing key (stdout); how to use and rotate it goes to stderr."""
    from engine.signing import generate_key

    new_key = generate_key()
    click.echo(new_key)
    click.echo(KEY_USAGE.format(key=new_key), err=True)


COMMANDS = [worker, coordinator, dev, key]
