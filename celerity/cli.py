"""The ``celerity`` command line: one click group per noun.

This module holds ``config show`` and ``flow run``; ``flow submit`` and
``runs`` live in ``celerity.cli_runs``, ``worker``, ``coordinator``, ``dev`` and
``key`` in ``celerity.cli_fleet``. Those modules never import this one (so that
``python -m celerity.cli`` does not build two command trees); it adds them below.
"""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from broker_config.settings import ENV_PREFIX, CeleritySettings, masked_settings
from celerity import cli_dashboard, cli_fleet, cli_runs
from celerity.cli_common import (
    UsageFailure,
    console,
    current_settings,
    redis_errors,
    result_text,
    settings_error,
    with_signing_key,
)
from celerity.loading import LoadError, load_target, parse_params


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="celerity", prog_name="celerity")
def main() -> None:
    """Celerity: @flow/@task workflows whose task runs execute on Celery workers."""


# --- config ---------------------------------------------------------------------


@main.group()
def config() -> None:
    """Inspect the settings in effect."""


def _load_settings() -> CeleritySettings:
    # Fresh settings rather than the cached ones: the command shows what a
    # process started now would use.
    try:
        return CeleritySettings()
    except (ValueError, OSError) as exc:
        raise click.ClickException(f"invalid settings: {settings_error(exc)}") from None


def _format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list | bool):
        return json.dumps(value)
    return str(value)


def _settings_table(values: dict[str, Any]) -> Table:
    table = Table(title="Celerity settings")
    table.add_column("setting", style="bold")
    # fold, not ellipsis: a truncated URL or variable name is useless to copy.
    table.add_column("value", overflow="fold")
    table.add_column("environment variable", style="dim", overflow="fold")
    for name, value in values.items():
        env = (
            f"{ENV_PREFIX}{name.upper()}" if name in CeleritySettings.model_fields else "(derived)"
        )
        table.add_row(name, _format_value(value), env)
    return table


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of a table.")
def config_show(as_json: bool) -> None:
    """Print the effective settings, with secrets and URL passwords masked."""
    values = masked_settings(_load_settings())
    if as_json:
        click.echo(json.dumps(values, indent=2))
    else:
        console().print(_settings_table(values))


# --- flow ------------------------------------------------------------------------


@main.group()
def flow() -> None:
    """Run flows here, or submit them to coordinators."""


def _load_flow(target: str) -> Any:
    try:
        obj = load_target(target)
    except LoadError as exc:
        raise UsageFailure(str(exc)) from None
    from engine.flows import Flow  # the engine is heavy; only flow commands need it

    if not isinstance(obj, Flow):
        raise UsageFailure(f"{target} is not a flow (decorate it with @flow)")
    return obj


def _call_flow(flow_obj: Any, params: dict[str, Any]) -> Any:
    from engine.exceptions import ObjectNotFound, ParameterTypeError, TerminationSignal

    # With return_state=True failures inside the flow come back as states, so
    # what is raised here is about the arguments themselves.
    try:
        return flow_obj(**params, return_state=True)
    except (TypeError, ParameterTypeError) as exc:
        name = getattr(flow_obj, "name", "?")
        raise UsageFailure(f"wrong parameters for flow {name!r}: {exc}") from None
    except TerminationSignal as exc:  # SIGTERM: the run has ended Crashed on the way out
        click.echo(f"Stopped by signal {exc.signal}: the flow run ended Crashed.", err=True)
        click.get_current_context().exit(128 + exc.signal)
    except ObjectNotFound as exc:  # the run's own record vanished under it
        raise click.ClickException(
            f"{exc} The run store lost this flow run's records "
            "(was Redis restarted without persistence, or its keys deleted?)."
        ) from None


def _print_final_state(state: Any) -> None:
    out = console()
    out.print(f"Flow run finished: [bold]{state.name}[/bold] (type {state.type.value})")
    # markup=False: a result's repr may contain "[...]" that rich would eat.
    out.print(f"Result: {result_text(state)}", markup=False)


@flow.command("run")
@click.argument("target", metavar="FILE:FUNC")
@click.option(
    "--param",
    "-p",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A parameter; VALUE is parsed as JSON when it can be. Repeatable; wins over --params.",
)
@click.option("--params", "params_json", metavar="JSON", help="Parameters as a JSON object.")
@redis_errors
def flow_run(target: str, pairs: tuple[str, ...], params_json: str | None) -> None:
    """Run the flow FUNC defined in FILE here and now; exit 0 when it completes."""
    settings = current_settings()
    if settings.broker_url:  # its task runs go to the fleet: it must sign them
        with_signing_key(settings)
    try:
        params = parse_params(pairs, params_json)
    except LoadError as exc:
        raise UsageFailure(str(exc)) from None
    from engine.logging.echo import echo_fleet_logs

    # On a fleet, workers run the task runs: their log lines are printed here as they come.
    with echo_fleet_logs(enabled=bool(settings.broker_url)):
        state = _call_flow(_load_flow(target), params)
    _print_final_state(state)
    if not state.is_completed():
        click.get_current_context().exit(1)


# --- commands from other modules -----------------------------------------------------

flow.add_command(cli_runs.flow_submit)
for _command in [*cli_runs.COMMANDS, *cli_fleet.COMMANDS, *cli_dashboard.COMMANDS]:
    main.add_command(_command)


if __name__ == "__main__":
    main()
