"""``celerity flow submit`` and ``celerity runs ls|show|logs|resume|retry``."""

from __future__ import annotations

import time
import uuid
from typing import Any

import click
from rich.pretty import pretty_repr
from rich.table import Table

from celerity.cli_common import (
    UsageFailure,
    broker_settings,
    console,
    fleet_settings,
    format_duration,
    format_state,
    format_time,
    parse_run_id,
    redis_errors,
)

FOLLOW_POLL_SECONDS = 0.5

# --- flow submit ---------------------------------------------------------------------


@click.command("submit")
@click.argument("target", metavar="FILE:FUNC")
@click.option(
    "--param",
    "-p",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A parameter; VALUE is parsed as JSON when it can be. Repeatable.",
)
@click.option("--params", "params_json", metavar="JSON", help="Parameters as a JSON object.")
@click.option("--wait", is_flag=True, help="Wait for the final state; exit 1 unless Completed.")
@click.option("--timeout", type=float, metavar="S", help="With --wait: give up after S seconds.")
@redis_errors
def flow_submit(
    target: str, pairs: tuple[str, ...], params_json: str | None, wait: bool, timeout: float | None
) -> None:
    """Submit the flow FUNC in FILE to the coordinators and print the flow run id."""
    from celerity.loading import LoadError, parse_params
    from workers.producer import SubmissionError, submit_flow_run

    settings = fleet_settings()
    try:
        run_id = submit_flow_run(target, parse_params(pairs, params_json), settings=settings)
    except (LoadError, SubmissionError) as exc:
        raise UsageFailure(str(exc)) from None
    click.echo(str(run_id))
    if wait:
        _wait_and_print(run_id, timeout)


def _wait_and_print(run_id: uuid.UUID, timeout: float | None) -> None:
    from workers.producer import wait_for_flow_run

    try:
        state = wait_for_flow_run(run_id, timeout=timeout)
    except TimeoutError as exc:
        raise click.ClickException(str(exc)) from None
    out = console()
    out.print(f"Flow run finished: {state.name} (type {state.type.value})", markup=False)
    if state.message:
        out.print(f"Message: {state.message}", markup=False)
    out.print(f"Result: {_result_text(state)}", markup=False)
    if not state.is_completed():
        click.get_current_context().exit(1)


def _result_text(state: Any) -> str:
    try:
        return pretty_repr(state.result(raise_on_failure=False))
    except Exception as exc:  # the value may be missing or unreadable here
        return f"<unavailable: {exc}>"


# --- runs ------------------------------------------------------------------------------


@click.group()
def runs() -> None:
    """Inspect flow runs in the run store."""


def _store() -> Any:
    broker_settings()
    from engine.store import get_store

    return get_store()


def _read_flow_run(run_id: uuid.UUID) -> Any:
    from engine.exceptions import ObjectNotFound

    try:
        return _store().read_flow_run(run_id)
    except ObjectNotFound:
        raise click.ClickException(f"no flow run with id {run_id}") from None


@runs.command("ls")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@redis_errors
def runs_ls(limit: int) -> None:
    """List the most recent flow runs, newest first."""
    table = Table(title="Flow runs")
    # An id is there to be copied: never folded, whatever the terminal width.
    table.add_column("id", no_wrap=True, min_width=36)
    for column in ("name", "flow", "state", "start", "duration"):
        table.add_column(column, overflow="fold")
    for run in _store().list_flow_runs(limit):
        table.add_row(
            str(run.id),
            run.name,
            run.flow_name,
            format_state(run),
            format_time(run.start_time),
            format_duration(run),
        )
    console().print(table)


@runs.command("show")
@click.argument("run_id", metavar="ID")
@redis_errors
def runs_show(run_id: str) -> None:
    """Show a flow run and its task runs."""
    flow_run = _read_flow_run(parse_run_id(run_id))
    task_runs = _store().read_task_runs(flow_run.id)
    out = console()
    for label, value in _flow_run_fields(flow_run):
        out.print(f"{label + ':':<12} {value}", markup=False)
    out.print(_task_runs_table(task_runs))


def _flow_run_fields(run: Any) -> list[tuple[str, Any]]:
    message = run.state.message if run.state is not None and run.state.message else None
    fields = [
        ("id", run.id),
        ("name", run.name),
        ("flow", run.flow_name),
        ("state", format_state(run)),
        ("parameters", pretty_repr(run.parameters)),
        ("start", format_time(run.start_time)),
        ("end", format_time(run.end_time)),
        ("duration", format_duration(run)),
        ("run count", run.run_count),
    ]
    return fields + ([("message", message)] if message else [])


def _task_runs_table(task_runs: list[Any]) -> Table:
    table = Table(title=f"Task runs ({len(task_runs)})")
    for column in ("name", "state", "worker", "start", "duration", "run_count"):
        table.add_column(column, overflow="fold")
    for run in task_runs:
        table.add_row(
            run.name,
            format_state(run),
            run.worker or "-",
            format_time(run.start_time),
            format_duration(run),
            str(run.run_count),
        )
    return table


@runs.command("logs")
@click.argument("run_id", metavar="ID")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the run is final.")
@redis_errors
def runs_logs(run_id: str, follow: bool) -> None:
    """Print a flow run's logs (its task runs' included)."""
    flow_run = _read_flow_run(parse_run_id(run_id))
    store = _store()
    offset = _print_logs(store, flow_run.id, 0)
    while follow and not _is_final(store, flow_run.id):
        time.sleep(FOLLOW_POLL_SECONDS)
        offset = _print_logs(store, flow_run.id, offset)
    if follow:  # lines written between the last read and the final state
        _print_logs(store, flow_run.id, offset)


def _is_final(store: Any, run_id: uuid.UUID) -> bool:
    state = store.read_flow_run(run_id).state
    return state is not None and state.is_final()


def _print_logs(store: Any, run_id: uuid.UUID, offset: int) -> int:
    import logging

    logs = store.read_logs(run_id, offset)
    for log in logs:
        stamp = log.timestamp.astimezone().strftime("%H:%M:%S.%f")[:-3]
        level = logging.getLevelName(log.level)
        click.echo(f"{stamp} | {level:<8} | {log.name} - {log.message}")
    return offset + len(logs)


@runs.command("retry")
@click.argument("run_id", metavar="ID")
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait for the new attempt's final state (exit 1 unless Completed).",
)
@click.option("--timeout", type=float, metavar="S", help="With --wait: give up after S seconds.")
@redis_errors
def runs_retry(run_id: str, wait: bool, timeout: float | None) -> None:
    """Run a Failed or Crashed flow run again; its completed task runs are reused, not re-run."""
    from engine.flow_attempts import RetryRefused, retry_flow_run

    fleet_settings()
    flow_run_id = parse_run_id(run_id)
    try:
        retry_flow_run(flow_run_id, wait=False)
    except RetryRefused as exc:
        raise click.ClickException(str(exc)) from None
    console().print(f"Retrying flow run {flow_run_id}", markup=False)
    if wait:
        _wait_and_print(flow_run_id, timeout)


COMMANDS = [runs]


@runs.command("resume")
@click.argument("run_id", metavar="ID")
@click.option(
    "--input", "input_json", metavar="JSON", help="Run input for a run that waits for it."
)
@redis_errors
def runs_resume(run_id: str, input_json: str | None) -> None:
    """Resume a paused flow run, sending run input if it waits for some."""
    import json

    from engine.flow_runs import NotPausedError, resume_flow_run

    _store()
    try:
        run_input = json.loads(input_json) if input_json else None
    except json.JSONDecodeError as exc:
        raise UsageFailure(f"--input is not valid JSON: {exc}") from None
    try:
        resume_flow_run(parse_run_id(run_id), run_input=run_input)
    except (NotPausedError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    console().print(f"Resumed flow run {run_id}")
