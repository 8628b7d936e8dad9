"""What the CLI's command modules share: error types, consoles, the Redis preconditions."""

from __future__ import annotations

import datetime
import functools
import os
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console

from broker_config.settings import ENV_PREFIX, CeleritySettings, get_settings

F = TypeVar("F", bound=Callable[..., Any])

NO_BROKER = (
    "CELERITY_BROKER_URL is not set: this command needs the Redis that the workers use, "
    "e.g. `export CELERITY_BROKER_URL=redis://127.0.0.1:6379/0` (or run `celerity dev` "
    "for a local one)."
)


class UsageFailure(click.ClickException):
    """A user error (bad target, bad parameters): printed without a traceback, exit 2."""

    exit_code = 2


# Piped output (a script, a log, a test) has no terminal width; rich would
# assume 80 columns and fold table cells ("Compl" / "eted"), which breaks grep.
PIPED_WIDTH = 240


def console(stderr: bool = False) -> Console:
    """A rich console on the current stdout (built per call so CliRunner sees the output).

    On a terminal it takes the terminal's width; piped, a wide one (or ``COLUMNS``).
    """
    piped = not Console(stderr=stderr).is_terminal and "COLUMNS" not in os.environ
    return Console(stderr=stderr, soft_wrap=True, width=PIPED_WIDTH if piped else None)


def current_settings() -> CeleritySettings:
    """The settings in effect; a one-line error when they are invalid."""
    try:
        return get_settings()
    except (ValueError, OSError) as exc:
        raise click.ClickException(f"invalid settings: {settings_error(exc)}") from None


def settings_error(exc: Exception) -> str:
    """Why settings are invalid, each problem named by its variable, never echoing a value
    (pydantic's own text repeats the input: a URL's password)."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        field = "_".join(str(part) for part in error["loc"]).upper()
        named = not field or message.startswith(f"{ENV_PREFIX}{field}")
        problems.append(message if named else f"{ENV_PREFIX}{field}: {message}")
    return "; ".join(problems)


def broker_settings() -> CeleritySettings:
    """The settings in effect; exit 2 with a clear message when no broker URL is set."""
    settings = current_settings()
    if not settings.broker_url:
        raise UsageFailure(NO_BROKER)
    return settings


def fleet_settings() -> CeleritySettings:
    """The settings of a fleet process: exit 2 unless a broker URL and a signing key are set."""
    return with_signing_key(broker_settings())


def with_signing_key(settings: CeleritySettings) -> CeleritySettings:
    """``settings``, after checking that they hold a usable ``CELERITY_SIGNING_KEY`` (else exit 2).

    Checked before anything starts, so that a process without a key says how to
    make one instead of failing at its first message.
    """
    from engine.exceptions import ConfigurationError
    from engine.signing import fleet_signer

    try:
        fleet_signer(settings)
    except ConfigurationError as exc:
        raise UsageFailure(str(exc)) from None
    return settings


def _connection_errors() -> tuple[type[BaseException], ...]:
    import redis
    from kombu.exceptions import OperationalError

    from engine.exceptions import ConfigurationError, StoreUnavailable

    return (
        StoreUnavailable,
        OperationalError,
        redis.ConnectionError,
        redis.TimeoutError,
        ConfigurationError,
    )


def redis_errors(command: F) -> F:
    """Turn an unreachable Redis (store or broker) into a one-line error, exit 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except _connection_errors() as exc:
            line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise click.ClickException(line) from None

    return wrapper  # type: ignore[return-value]


def check_broker(settings: CeleritySettings) -> None:
    """Raise a one-line ClickException unless the broker's Redis answers PING."""
    import redis

    from engine.store.redis import masked_url

    client = redis.Redis.from_url(
        str(settings.broker_url), socket_connect_timeout=5, socket_timeout=5
    )
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise click.ClickException(
            f"Cannot reach the broker at {masked_url(str(settings.broker_url))}: {exc}"
        ) from None
    finally:
        client.close()


def parse_run_id(text: str) -> uuid.UUID:
    """A flow run id from the command line; exit 2 when it is not a UUID."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise UsageFailure(f"not a flow run id: {text!r}") from None


def format_time(value: datetime.datetime | None) -> str:
    """A timestamp in local time to the second, or '-'."""
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def format_duration(run: Any) -> str:
    """How long a run ran: its total once final, the time so far while running, else '-'."""
    if run.start_time is None:
        return "-"
    if run.end_time is not None:
        seconds = run.total_run_time or (run.end_time - run.start_time).total_seconds()
    else:
        seconds = (datetime.datetime.now(datetime.UTC) - run.start_time).total_seconds()
    return f"{seconds:.2f}s"


def format_state(run: Any) -> str:
    """A run's state name, or '-'."""
    return run.state.name if run.state is not None else "-"


def result_text(state: Any) -> str:
    """A final state's result as the CLI prints it: rich's readable layout for a value,
    a state's own one-line repr (``NotReady(message=..., type=PENDING, result=None)``)
    for a state or states, which rich would otherwise spell out field by field."""
    from rich.pretty import pretty_repr

    from engine.states import State

    try:
        value = state.result(raise_on_failure=False)
    except Exception as exc:  # the value may be missing or unreadable here
        return f"<unavailable: {exc}>"
    states = value if isinstance(value, (list, tuple, set)) else [value]
    if any(isinstance(item, State) for item in states):
        return repr(value)
    return pretty_repr(value)
