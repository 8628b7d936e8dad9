"""``celerity flow submit`` and ``celerity runs ls|show|watch|logs|resume|retry``."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import click
from rich.pretty import pretty_repr
from rich.table import Table

from celerity import cli_inspect
from celerity.cli_common import (
    UsageFailure,
    broker_settings,
    console,
    current_settings,
    fleet_settings,
    format_duration,
    format_state,
    format_time,
    redis_errors,
    result_text,
)

FOLLOW_POLL_SECONDS = 0.5

# --- flow submit ---------------------------------------------------------------------

# A coordinator imports a flow file once, so an edited file needs a restart.
STALE_FLOW_HINT = (
    "Hint: coordinators (and workers) import each flow file once; if the file changed since "
    "they started, restart them."
)


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
@click.option(
    "--wait",
    is_flag=True,
    help="Show the run's progress until it is final; exit 1 unless Completed.",
)
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
        _watch_and_print(run_id, timeout, warn_unclaimed=True)


def _watch_and_print(run_id: uuid.UUID, timeout: float | None, warn_unclaimed: bool) -> None:
    from celerity.progress import watch_flow_run

    on_poll = _unclaimed_warning() if warn_unclaimed else None
    try:
        state = watch_flow_run(_store(), run_id, console(), timeout=timeout, on_poll=on_poll)
    except TimeoutError as exc:
        raise click.ClickException(str(exc)) from None
    _print_outcome(state)


def _unclaimed_warning() -> Any:
    """An ``on_poll`` that warns on stderr, once, when the run stays Scheduled too long."""
    from engine.states import StateType
    from workers.producer import NO_COORDINATOR_SECONDS, unclaimed_warning

    warned = False

    def check(flow_run: Any, elapsed: float) -> None:
        nonlocal warned
        state = flow_run.state
        if warned or elapsed < NO_COORDINATOR_SECONDS:
            return
        if state is not None and state.type == StateType.SCHEDULED:
            warned = True
            click.echo(unclaimed_warning(flow_run.id, elapsed), err=True)

    return check


def _print_outcome(state: Any) -> None:
    out = console()
    out.print(f"Flow run finished: {state.name} (type {state.type.value})", markup=False)
    if state.message:
        out.print(f"Message: {state.message}", markup=False)
    out.print(f"Result: {result_text(state)}", markup=False)
    if _not_loaded(state):
        click.echo(STALE_FLOW_HINT, err=True)
    if not state.is_completed():
        click.get_current_context().exit(1)


def _not_loaded(state: Any) -> bool:
    """Whether a coordinator failed the run because it could not load the flow."""
    return bool(state is not None and state.message and "Could not load the flow" in state.message)


# --- runs ------------------------------------------------------------------------------


@click.group()
def runs() -> None:
    """Inspect flow runs in the run store: ID is a run id, a unique prefix of one, or a name."""


def _store() -> Any:
    broker_settings()
    from engine.store import get_store

    return get_store()


def _find(text: str) -> Any:
    """The flow run ``text`` names (id, unique id prefix or name); exit 1 naming the problem."""
    from celerity.run_lookup import RunLookupError, find_flow_run

    try:
        return find_flow_run(_store(), text)
    except RunLookupError as exc:
        raise click.ClickException(str(exc)) from None


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@runs.command("ls")
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="S",
    help="Only runs in this state (Failed, Running, Completed, Retrying, ...). Repeatable.",
)
@click.option("--flow", "flow_name", metavar="NAME", help="Only runs of this flow.")
@click.option("--since", metavar="DURATION", help="Only runs created in the last 10m, 2h, 1d...")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@redis_errors
def runs_ls(
    states: tuple[str, ...], flow_name: str | None, since: str | None, limit: int, as_json: bool
) -> None:
    """List the most recent flow runs, newest first."""
    from celerity.run_details import flow_run_summary
    from celerity.run_filters import select_flow_runs

    selected = select_flow_runs(_store(), _run_filter(states, flow_name, since), limit)
    if as_json:
        _print_json([flow_run_summary(run) for run in selected])
        return
    console().print(_runs_table(selected))


def _run_filter(states: tuple[str, ...], flow_name: str | None, since: str | None) -> Any:
    from celerity.run_filters import RunFilter, parse_duration

    try:
        return RunFilter(states, flow_name, parse_duration(since) if since else None)
    except ValueError as exc:
        raise UsageFailure(str(exc)) from None


def _runs_table(flow_runs: list[Any]) -> Table:
    table = Table(title="Flow runs")
    # An id is there to be copied: never folded, whatever the terminal width.
    table.add_column("id", no_wrap=True, min_width=36)
    for column in ("name", "flow", "state", "start", "duration"):
        table.add_column(column, overflow="fold")
    for run in flow_runs:
        table.add_row(
            str(run.id),
            run.name,
            run.flow_name,
            format_state(run),
            format_time(run.start_time),
            format_duration(run),
        )
    return table


@runs.command("show")
@click.argument("run_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of tables.")
@redis_errors
def runs_show(run_id: str, as_json: bool) -> None:
    """Show a flow run and its task runs, with each one's error, worker and duration."""
    from celerity.run_details import flow_run_detail

    flow_run = _find(run_id)
    detail = flow_run_detail(_store(), flow_run)
    if as_json:
        _print_json(detail)
        return
    out = console()
    for label, value in _flow_run_fields(flow_run, detail):
        out.print(f"{label + ':':<12} {value}", markup=False)
    out.print(_task_runs_table(detail["task_runs"]))
    _print_errors(detail)
    if _not_loaded(flow_run.state):
        click.echo(STALE_FLOW_HINT)


def _flow_run_fields(run: Any, detail: dict[str, Any]) -> list[tuple[str, Any]]:
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
    message = run.state.message if run.state is not None and run.state.message else None
    if message:
        fields.append(("message", message))
    if run.parent_flow_run_id:
        fields.append(("parent run", run.parent_flow_run_id))
    if detail["input_schema"] is not None:
        fields.extend(_input_fields(run, detail["input_schema"]))
    return fields


def _input_fields(run: Any, schema: dict[str, Any]) -> list[tuple[str, Any]]:
    from celerity.run_details import input_example

    return [
        ("waits for", f"input {input_example(schema)}"),
        ("resume with", f"celerity runs resume {run.id} --input '{input_example(schema)}'"),
        ("schema", json.dumps(schema)),
    ]


def _task_runs_table(task_runs: list[dict[str, Any]]) -> Table:
    table = Table(title=f"Task runs ({len(task_runs)})")
    for column in ("name", "state", "worker", "start", "duration", "runs", "subflow run"):
        table.add_column(column, overflow="fold")
    for run in task_runs:
        seconds = run["duration_seconds"]
        table.add_row(
            run["name"],
            run["state"] or "-",
            run["worker"] or "-",
            _local_time(run["start_time"]),
            f"{seconds:.2f}s" if seconds is not None else "-",
            str(run["run_count"]),
            run["child_flow_run_id"] or "-",
        )
    return table


def _local_time(iso: str | None) -> str:
    import datetime

    return format_time(datetime.datetime.fromisoformat(iso)) if iso else "-"


def _print_errors(detail: dict[str, Any]) -> None:
    failed = [run for run in [detail, *detail["task_runs"]] if run["error"] or run["traceback"]]
    if not failed:
        return
    click.echo("\nErrors:")
    for run in failed:
        click.echo(f"  {run['name']} ({run['state']}): {run['error'] or '-'}")
        if run["traceback"]:
            click.echo("    " + run["traceback"].rstrip().replace("\n", "\n    "))


@runs.command("watch")
@click.argument("run_id", metavar="ID")
@click.option("--timeout", type=float, metavar="S", help="Give up after S seconds (exit 1).")
@redis_errors
def runs_watch(run_id: str, timeout: float | None) -> None:
    """Show a flow run's task runs by state, live, until the run is final."""
    if not current_settings().broker_url:
        raise UsageFailure(WATCH_NEEDS_FLEET)
    _watch_and_print(_find(run_id).id, timeout, warn_unclaimed=False)


WATCH_NEEDS_FLEET = (
    "runs watch follows a run in the fleet's Redis, and CELERITY_BROKER_URL is not set. "
    "A run of an embedded flow (no broker URL) lives only in the memory of the process that "
    "runs it, which prints its outcome itself; set CELERITY_BROKER_URL to watch fleet runs."
)


@runs.command("logs")
@click.argument("run_id", metavar="ID")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the run is final.")
@redis_errors
def runs_logs(run_id: str, follow: bool) -> None:
    """Print a flow run's logs: its task runs' and its subflows' included, each line
    labelled with the task run or (marked ``subflow``) the child flow run that wrote it."""
    from engine.logging.tail import RunLogTail

    flow_run = _find(run_id)
    store = _store()
    tail = RunLogTail(store, flow_run.id)
    _print_lines(tail)
    while follow and not _is_final(store, flow_run.id):
        time.sleep(FOLLOW_POLL_SECONDS)
        _print_lines(tail)
    if follow:  # lines written between the last read and the final state
        _print_lines(tail)


def _is_final(store: Any, run_id: uuid.UUID) -> bool:
    state = store.read_flow_run(run_id).state
    return state is not None and state.is_final()


def _print_lines(tail: Any) -> None:
    for line in tail.poll():
        click.echo(line.text())


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
    flow_run_id = _find(run_id).id
    try:
        retry_flow_run(flow_run_id, wait=False)
    except RetryRefused as exc:
        raise click.ClickException(str(exc)) from None
    console().print(f"Retrying flow run {flow_run_id}", markup=False)
    if wait:
        _watch_and_print(flow_run_id, timeout, warn_unclaimed=True)


# ``workers`` and ``queues`` are registered with ``runs`` (celerity.cli adds these).
COMMANDS = [runs, *cli_inspect.COMMANDS]


@runs.command("resume")
@click.argument("run_id", metavar="ID")
@click.option(
    "--input",
    "input_json",
    metavar="JSON",
    help="Run input for a run that waits for some (`runs show ID` shows what it takes).",
)
@redis_errors
def runs_resume(run_id: str, input_json: str | None) -> None:
    """Resume a paused flow run, sending run input if it waits for some."""
    from celerity.run_details import input_schema
    from engine.flow_runs import NotPausedError, resume_flow_run

    flow_run = _find(run_id)
    schema = input_schema(_store(), flow_run)
    run_input = _run_input(input_json, schema)
    try:
        resume_flow_run(flow_run.id, run_input=run_input)
    except (NotPausedError, ValueError) as exc:
        raise click.ClickException(str(exc) + _schema_hint(schema)) from None
    console().print(f"Resumed flow run {flow_run.id}", markup=False)


def _run_input(input_json: str | None, schema: dict[str, Any] | None) -> Any:
    """``--input`` as the run input dict; a bare value for a plain-type input is wrapped."""
    from celerity.run_details import is_value_wrapper

    try:
        value = json.loads(input_json) if input_json is not None else None
    except json.JSONDecodeError as exc:
        raise UsageFailure(f"--input is not valid JSON: {exc}{_schema_hint(schema)}") from None
    if schema is None or value is None:
        return value
    if is_value_wrapper(schema) and not (isinstance(value, dict) and list(value) == ["value"]):
        return {"value": value}  # wait_for_input=bool: `--input true` means {"value": true}
    if not isinstance(value, dict):
        raise UsageFailure(f"--input must be a JSON object here.{_schema_hint(schema)}")
    return value


def _schema_hint(schema: dict[str, Any] | None) -> str:
    from celerity.run_details import input_example

    if schema is None:
        return ""
    return f"\nIt waits for input {input_example(schema)} (JSON schema: {json.dumps(schema)})"
