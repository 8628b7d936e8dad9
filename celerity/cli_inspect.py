"""``celerity workers ls`` and ``celerity queues ls``: the fleet's processes and backlog."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from celerity.cli_common import broker_settings, console, redis_errors

NO_WORKER_ANSWERED = (
    "No worker or coordinator answered. They answer `workers ls` when started with "
    "CELERITY_REMOTE_CONTROL=true (Celery's inspect), or with -E / CELERITY_WORKER_EVENTS=true "
    "(heartbeats every 2 s); `celerity dev` starts neither."
)


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)


@click.group()
def workers() -> None:
    """See the fleet's workers and coordinators."""


@workers.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@redis_errors
def workers_ls(as_json: bool) -> None:
    """List live workers and coordinators: name, status, active jobs (Celery inspect/heartbeats)."""
    from celerity.fleet_status import list_workers

    found = list_workers(broker_settings())
    if as_json:
        click.echo(json.dumps([status.as_dict() for status in found], indent=2))
    if not found:
        click.echo(NO_WORKER_ANSWERED, err=True)
    if as_json or not found:
        return
    table = Table(title=f"Workers ({len(found)})")
    table.add_column("name", no_wrap=True)
    for column in ("kind", "status", "active", "processed", "concurrency", "uptime"):
        table.add_column(column)
    for status in found:
        uptime = status.uptime_seconds
        table.add_row(
            status.name,
            status.kind,
            status.status,
            _or_dash(status.active),
            _or_dash(status.processed),
            _or_dash(status.concurrency),
            f"{uptime:.0f}s" if uptime is not None else "-",
        )
    console().print(table)


@click.group()
def queues() -> None:
    """See the depth of the fleet's queues."""


@queues.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@redis_errors
def queues_ls(as_json: bool) -> None:
    """List the queues with their jobs waiting and reserved (taken, not yet acknowledged)."""
    from celerity.fleet_status import queue_depths

    settings = broker_settings()
    depths = queue_depths(settings)
    if as_json:
        click.echo(json.dumps([depth.as_dict() for depth in depths], indent=2))
        return
    table = Table(
        title="Queues",
        caption=f"A task-run job carries up to {settings.task_batch_size} task runs.",
    )
    for column in ("queue", "waiting", "reserved"):
        table.add_column(column)
    for depth in depths:
        table.add_row(depth.name, str(depth.waiting), str(depth.reserved))
    console().print(table)


COMMANDS = [workers, queues]
