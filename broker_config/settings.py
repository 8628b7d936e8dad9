"""Celerity's settings: one typed model read from the environment and a TOML file.

Precedence, highest first: keyword arguments to ``CeleritySettings(...)``,
``CELERITY_*`` environment variables, the TOML config file, the defaults below.

The config file is the path in ``CELERITY_CONFIG_FILE`` (it must exist), else
``./celerity.toml`` when present. Keys are the field names at the top level::

    broker_url = "redis://127.0.0.1:6379/0"
    task_routes = { io = "io-queue" }

Dict settings (``task_routes``) are merged key by key across sources, the
higher source winning per key, as pydantic-settings does.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "CELERITY_"
CONFIG_FILE_ENV = "CELERITY_CONFIG_FILE"
DEFAULT_CONFIG_FILE = "celerity.toml"
MASK = "****"
WEEK_SECONDS = 7 * 24 * 3600
# CELERITY_* variables that are read by name but are not settings: the config
# file's path, and the logging configuration's overrides
# (engine.logging.configuration). Any other unknown one is an error.
OTHER_ENV_NAMES = frozenset({CONFIG_FILE_ENV})
OTHER_ENV_PREFIXES = ("CELERITY_LOGGING_",)
# URL schemes the run store and the broker understand.
REDIS_SCHEMES = ("redis", "rediss", "unix")
STORE_SCHEMES = (*REDIS_SCHEMES, "memory")


class CeleritySettings(BaseSettings):
    """Every setting Celerity reads, with its default and its environment variable.

    Example::

        settings = CeleritySettings(broker_url="redis://127.0.0.1:6379/0")
        settings.effective_store_url  # 'redis://127.0.0.1:6379/0'
    """

    # extra="forbid" turns a misspelt key in the TOML file into an error
    # instead of a silently ignored setting.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    # --- broker and store --------------------------------------------------
    broker_url: str | None = Field(
        default=None,
        description="Redis URL of the Celery broker; when set, flows use the Celery runner.",
    )
    store_url: str | None = Field(
        default=None,
        description="Redis URL of the run store; defaults to broker_url (in memory if both unset).",
    )
    key_prefix: str = Field(
        default="celerity",
        description="Prefix of every Redis key Celerity writes, so deployments can share a Redis.",
    )
    retention_seconds: int = Field(
        default=WEEK_SECONDS,
        ge=1,
        description="Time to live of finished flow and task runs in the run store.",
    )

    # --- results -----------------------------------------------------------
    result_storage: Literal["redis", "file"] = Field(
        default="redis",
        description="Where task results are persisted: the Redis store or files under result_path.",
    )
    result_path: str = Field(
        default=".celerity/results",
        description="Directory for results when result_storage is 'file'.",
    )
    default_result_storage_name: str | None = Field(
        default=None,
        description=(
            "A storage saved by name in this process (e.g. 'local-file-system/results' after "
            "LocalFileSystem(basepath=...).save('results')) used as the default result storage."
        ),
    )
    result_ttl_seconds: int = Field(
        default=WEEK_SECONDS,
        ge=1,
        description="Time to live of persisted results.",
    )

    # --- security ----------------------------------------------------------
    signing_key: SecretStr | None = Field(
        default=None,
        description=(
            "HMAC keys (comma-separated: the first signs, all verify) that sign messages and "
            "results; required with broker_url (make one with `celerity key generate`), "
            "embedded runs use a private per-user key when unset."
        ),
    )

    # --- queues and routing --------------------------------------------------
    default_queue: str = Field(
        default="celerity",
        description="Queue for task runs that have no explicit queue and no routed tag.",
    )
    flow_queue: str = Field(
        default="flows",
        description="Queue that coordinators consume submitted flow runs from.",
    )
    task_routes: dict[str, str] = Field(
        default_factory=dict,
        description="Routing rules tag -> queue; the first tag of a task run with a rule wins.",
    )

    # --- runner and workers ----------------------------------------------------
    runner: Literal["auto", "thread", "celery"] = Field(
        default="auto",
        description="Task runner for flows: 'auto' picks celery when broker_url is set.",
    )
    worker_concurrency: int = Field(
        default=2,
        ge=1,
        description="Processes or threads per worker.",
    )
    worker_pool: Literal["prefork", "threads", "solo"] = Field(
        default="prefork",
        description="Celery worker pool implementation.",
    )
    remote_control: bool = Field(
        default=False,
        description="Enable Celery remote control (celery inspect/control) on workers.",
    )
    worker_events: bool = Field(
        default=False,
        description=(
            "Workers send Celery task events and heartbeats, and producers task-sent events "
            "(Flower, `celery events`); same as `celerity worker start -E`."
        ),
    )
    task_batch_size: int = Field(
        default=100,
        ge=1,
        description="Maximum number of task runs one Celery message may carry.",
    )
    lease_seconds: float = Field(
        default=30,
        gt=0,
        description="Lease of a running task run or coordinator; renewed by heartbeats.",
    )

    # --- dashboard -----------------------------------------------------------------
    dashboard_token: SecretStr | None = Field(
        default=None,
        description=(
            "Token that allows the web dashboard's actions (retry, resume); without it the "
            "dashboard is read-only. Send it as `Authorization: Bearer <token>`."
        ),
    )

    worker_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description=(
            "Port on which each worker and coordinator serves Prometheus metrics of its own "
            "(jobs run, running and reserved; CPU, memory); off when unset. One port per process."
        ),
    )

    # --- Redis connection --------------------------------------------------------
    socket_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds before a Redis socket operation times out.",
    )
    socket_keepalive: bool = Field(
        default=True,
        description="Enable TCP keepalive on Redis connections.",
    )
    health_check_interval: int = Field(
        default=30,
        ge=0,
        description="Seconds between Redis connection health checks (0 disables them).",
    )

    # --- run defaults (what Prefect code sets as PREFECT_* settings, see engine.settings) ---
    task_default_retries: int = Field(
        default=0, ge=0, description="Retries of a task that does not set retries."
    )
    task_default_retry_delay_seconds: float = Field(
        default=0, ge=0, description="Retry delay of a task that does not set retry_delay_seconds."
    )
    flow_default_retries: int = Field(
        default=0, ge=0, description="Retries of a flow that does not set retries."
    )
    flow_default_retry_delay_seconds: float = Field(
        default=0, ge=0, description="Retry delay of a flow that does not set retry_delay_seconds."
    )
    persist_results_by_default: bool = Field(
        default=False, description="Persist results of runs that do not set persist_result."
    )
    refresh_cache: bool = Field(
        default=False, description="Run cached tasks again and overwrite their cache records."
    )
    default_no_cache: bool = Field(
        default=False, description="Tasks without a cache_policy use NO_CACHE instead of DEFAULT."
    )
    disable_caching: bool = Field(
        default=False, description="No task reads or writes cache records, whatever its policy."
    )
    log_prints: bool = Field(
        default=False, description="print() in runs that do not set log_prints becomes log lines."
    )
    logging_level: str = Field(
        default="INFO", description="Level of the celerity loggers (run loggers included)."
    )
    debug_mode: bool = Field(
        default=False,
        description="Log at DEBUG whatever logging_level says (read when logging is set up).",
    )
    logging_settings_path: str | None = Field(
        default=None,
        description="A logging.config dictConfig file (JSON, or YAML with PyYAML) to use instead "
        "of Celerity's.",
    )
    logging_extra_loggers: str = Field(
        default="",
        description="Comma-separated loggers of other libraries whose lines in runs are kept "
        "with the run's logs.",
    )
    logging_colors: bool = Field(
        default=True, description="The rich console log handler highlights levels and names."
    )
    logging_markup: bool = Field(
        default=False, description="The rich console log handler renders [style] markup."
    )
    thread_pool_max_workers: int | None = Field(
        default=None,
        ge=1,
        description="Threads of a ThreadPoolTaskRunner made without max_workers.",
    )
    process_pool_max_workers: int | None = Field(
        default=None,
        ge=1,
        description="Processes of a ProcessPoolTaskRunner made without max_workers.",
    )

    @field_validator("broker_url", "store_url")
    @classmethod
    def _check_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A URL with a scheme the store and broker know; a typo fails here, with its name."""
        if not value:
            return None
        schemes = STORE_SCHEMES if info.field_name == "store_url" else REDIS_SCHEMES
        scheme, sep, _ = value.partition("://")
        if not sep or scheme.lower() not in schemes:
            name = f"{ENV_PREFIX}{str(info.field_name).upper()}"
            raise ValueError(
                f"{name}={_mask_any_password(value)!r} is not a Redis URL: expected "
                "redis://HOST:PORT/DB, rediss://HOST:PORT/DB (TLS) or unix:///PATH"
            )
        return value

    @property
    def effective_store_url(self) -> str | None:
        """The run store URL in effect: store_url, else broker_url, else None (in memory)."""
        return self.store_url or self.broker_url

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read keyword arguments, then the environment, then the TOML file."""
        refuse_unknown_environment(settings_cls.model_fields)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_file_path()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def refuse_unknown_environment(fields: Any, environ: Any = None) -> None:
    """Raise ValueError naming a ``CELERITY_*`` variable that is no setting, as the TOML
    file's unknown keys are: a misspelt variable must not be silently ignored."""
    known = {f"{ENV_PREFIX}{name.upper()}" for name in fields} | OTHER_ENV_NAMES
    for name in sorted(os.environ if environ is None else environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known:
            continue
        if upper.startswith(OTHER_ENV_PREFIXES):
            continue
        close = difflib.get_close_matches(upper, sorted(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(
            f"unknown setting {name} in the environment{hint}; "
            "`celerity config show` lists the settings"
        )


def _mask_any_password(text: str) -> str:
    """``text`` with anything between ``:`` and ``@`` masked, URL or not."""
    return re.sub(r":[^:@/]*@", f":{MASK}@", text)


def config_file_path() -> Path | None:
    """Return the TOML file settings are read from, or None when there is none.

    Raises FileNotFoundError when ``CELERITY_CONFIG_FILE`` names a missing file:
    a typo there should not silently fall back to defaults.
    """
    named = os.environ.get(CONFIG_FILE_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            raise FileNotFoundError(f"{CONFIG_FILE_ENV}={named!r} does not name a file")
        return path
    local = Path(DEFAULT_CONFIG_FILE)
    return local if local.is_file() else None


@functools.lru_cache(maxsize=1)
def get_settings() -> CeleritySettings:
    """Return the process-wide settings, read once and cached."""
    return CeleritySettings()


def reset_settings() -> None:
    """Forget the cached settings so the next ``get_settings()`` reads them again."""
    get_settings.cache_clear()


def mask_url(url: str) -> str:
    """Return ``url`` with its password replaced by ``****``.

    >>> mask_url("redis://:secret@host:6379/0")
    'redis://:****@host:6379/0'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{hostinfo}"))


def _mask_value(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


def masked_settings(settings: CeleritySettings | None = None) -> dict[str, Any]:
    """Return the settings as a plain dict that is safe to print or log.

    Secrets become ``****`` and passwords inside URLs are masked; the derived
    ``effective_store_url`` is included because it is what the store uses.
    """
    settings = settings or get_settings()
    values = {name: getattr(settings, name) for name in type(settings).model_fields}
    values["effective_store_url"] = settings.effective_store_url
    return {name: _mask_value(value) for name, value in values.items()}
