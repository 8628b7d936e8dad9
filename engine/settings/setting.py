"""Prefect-named setting objects, each a view of one field of Celerity's settings.

Prefect code names its settings ``PREFECT_...`` and reads them with
``.value()``. Here each such name either reads a field of ``CeleritySettings``
(the one settings object) or, when Celerity has no such concept (Prefect's
server, blocks, profiles), is a setting without a field: reading it gives the
value that describes Celerity (no API URL, say) or raises, and changing it
raises an error naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.config import current_settings
from engine.exceptions import ConfigurationError


class UnsupportedSettingError(ConfigurationError, ValueError):
    """A Prefect setting that has no meaning in Celerity was set or read."""


_UNSET: Any = object()
_SERVER = "Celerity has no Prefect server or API"
_UNKNOWN = "Celerity has no such setting (its settings are CELERITY_* variables and celerity.toml)"


class Setting:
    """One ``PREFECT_*`` setting: ``.value()`` reads it from the current settings.

    Example::

        PREFECT_TASK_DEFAULT_RETRIES.value()  # CeleritySettings.task_default_retries
    """

    def __init__(
        self,
        name: str,
        field: str | None = None,
        *,
        convert: Callable[[Any], Any] | None = None,
        store: Callable[[Any], Any] | None = None,
        fixed: Any = _UNSET,
        reason: str = _UNKNOWN,
    ) -> None:
        self._name = name
        self.field = field
        self._convert = convert
        self._store = store
        self._fixed = fixed
        self.reason = reason

    @property
    def name(self) -> str:
        """The Prefect name, ``PREFECT_...``."""
        return self._name

    @property
    def supported(self) -> bool:
        """Whether this setting reads and writes a Celerity field."""
        return self.field is not None

    def default(self) -> Any:
        """The value when nothing sets it."""
        if self.field is None:
            return self._fixed_value()
        from broker_config.settings import CeleritySettings

        return self._converted(CeleritySettings.model_fields[self.field].get_default())

    def value(self) -> Any:
        """The value in the current settings (a ``temporary_settings`` block's, if any)."""
        return self.value_from(current_settings())

    def value_from(self, settings: Any) -> Any:
        """The value in ``settings`` (a ``CeleritySettings``)."""
        if self.field is None:
            return self._fixed_value()
        return self._converted(getattr(settings, self.field))

    def stored(self, value: Any) -> Any:
        """``value`` as the Celerity field takes it (a path as a string, say)."""
        return value if value is None or self._store is None else self._store(value)

    def accepts(self, value: Any) -> bool:
        """Whether setting it to ``value`` means something (always, for a supported setting)."""
        return self.field is not None or (self._fixed is not _UNSET and value == self._fixed)

    def unsupported(self) -> UnsupportedSettingError:
        """The error that says why this setting cannot be changed here."""
        return UnsupportedSettingError(f"{self.name} has no meaning in Celerity: {self.reason}.")

    def _fixed_value(self) -> Any:
        if self._fixed is _UNSET:
            raise self.unsupported()
        return self._fixed

    def _converted(self, raw: Any) -> Any:
        if raw is None or self._convert is None:
            return raw
        return self._convert(raw)

    def __bool__(self) -> bool:
        return bool(self.value())

    def __str__(self) -> str:
        return str(self.value())

    def __repr__(self) -> str:
        return f"<{self.name}>"

    def __hash__(self) -> int:
        return hash((type(self), self.name))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Setting) and other.name == self.name


def _names(text: Any) -> list[str]:
    """A comma-separated list of names (a list is taken as it is)."""
    items = text if isinstance(text, list) else str(text).split(",")
    return [name.strip() for name in items if name.strip()]


def _joined(names: Any) -> str:
    return ",".join(_names(names))


def _fields() -> list[Setting]:
    return [
        Setting("PREFECT_LOCAL_STORAGE_PATH", "result_path", convert=Path, store=str),
        Setting("PREFECT_TASK_DEFAULT_RETRIES", "task_default_retries"),
        Setting("PREFECT_TASK_DEFAULT_RETRY_DELAY_SECONDS", "task_default_retry_delay_seconds"),
        Setting("PREFECT_FLOW_DEFAULT_RETRIES", "flow_default_retries"),
        Setting("PREFECT_FLOW_DEFAULT_RETRY_DELAY_SECONDS", "flow_default_retry_delay_seconds"),
        Setting("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "persist_results_by_default"),
        Setting("PREFECT_TASKS_REFRESH_CACHE", "refresh_cache"),
        Setting("PREFECT_TASKS_DEFAULT_NO_CACHE", "default_no_cache"),
        Setting("PREFECT_TASKS_DISABLE_CACHING", "disable_caching"),
        Setting("PREFECT_LOGGING_LOG_PRINTS", "log_prints"),
        Setting("PREFECT_LOGGING_LEVEL", "logging_level"),
        Setting("PREFECT_DEBUG_MODE", "debug_mode"),
        Setting("PREFECT_LOGGING_COLORS", "logging_colors"),
        Setting("PREFECT_LOGGING_SETTINGS_PATH", "logging_settings_path", convert=Path, store=str),
        Setting(
            "PREFECT_LOGGING_EXTRA_LOGGERS", "logging_extra_loggers", convert=_names, store=_joined
        ),
        Setting("PREFECT_LOGGING_MARKUP", "logging_markup"),
        Setting("PREFECT_TASK_RUNNER_THREAD_POOL_MAX_WORKERS", "thread_pool_max_workers"),
        Setting("PREFECT_TASKS_RUNNER_PROCESS_POOL_MAX_WORKERS", "process_pool_max_workers"),
        # Prefect's storage blocks are, here, storages saved by name in the process.
        Setting("PREFECT_DEFAULT_RESULT_STORAGE_BLOCK", "default_result_storage_name"),
        Setting("PREFECT_TASK_SCHEDULING_DEFAULT_STORAGE_BLOCK", "default_result_storage_name"),
    ]


def _without_field() -> list[Setting]:
    # Read as what they would be in a Prefect without a server; set, they raise.
    return [
        Setting("PREFECT_API_URL", fixed=None, reason=_SERVER),
        Setting("PREFECT_API_KEY", fixed=None, reason=_SERVER),
        Setting("PREFECT_UI_URL", fixed=None, reason=_SERVER),
        Setting("PREFECT_LOGGING_TO_API_ENABLED", fixed=False, reason=_SERVER),
        Setting("PREFECT_TEST_MODE", fixed=False, reason="Celerity has no test mode"),
    ]


SETTINGS: dict[str, Setting] = {s.name: s for s in [*_fields(), *_without_field()]}


def setting_named(name: str) -> Setting:
    """The setting for a ``PREFECT_*`` name; one without a field if Celerity does not know it."""
    found = SETTINGS.get(name)
    if found is None:
        reason = _SERVER if "_API_" in name or name.startswith("PREFECT_SERVER") else _UNKNOWN
        found = Setting(name, reason=reason)
    return found
