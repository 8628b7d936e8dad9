"""Prefect-style access to Celerity's settings: ``PREFECT_*`` names, ``temporary_settings``.

This is a view, not a second settings system: every ``PREFECT_*`` name that
Celerity can honour reads a field of ``CeleritySettings`` (environment
``CELERITY_*``, ``celerity.toml``), and ``temporary_settings`` runs a block
with a changed copy of that one object. Example::

    from engine.settings import PREFECT_TASK_DEFAULT_RETRIES, temporary_settings

    with temporary_settings(updates={PREFECT_TASK_DEFAULT_RETRIES: 2}):
        ...  # tasks made here without retries= retry twice

Any other ``PREFECT_*`` name imports (so ported modules load) but raises
``UnsupportedSettingError``, naming it, when set.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from engine.config import current_settings, overridden_settings
from engine.settings.setting import (
    SETTINGS,
    Setting,
    UnsupportedSettingError,
    setting_named,
)


def get_current_settings() -> Any:
    """The settings in effect here (a ``CeleritySettings``)."""
    return current_settings()


@contextmanager
def temporary_settings(
    updates: Mapping[Setting | str, Any] | None = None,
    set_defaults: Mapping[Setting | str, Any] | None = None,
    restore_defaults: Iterable[Setting | str] | None = None,
) -> Iterator[Any]:
    """Run the block with changed settings; yields the settings in effect inside it.

    ``updates`` set values, ``set_defaults`` set values only where nothing
    (environment, file, an outer block) set them, ``restore_defaults`` go back
    to the default. Keys are ``Setting`` objects, ``PREFECT_*`` names or
    ``CeleritySettings`` field names. The change is seen by this block's
    threads and tasks in this process (not by Celery workers, which read their
    own environment). Raises UnsupportedSettingError for a setting Celerity
    has no meaning for, and pydantic's ValidationError for a value of the
    wrong type.
    """
    base = current_settings()
    data = base.model_dump(exclude_unset=True)
    for key, value in (set_defaults or {}).items():
        field, stored = _field(key, value)
        if field is not None and field not in base.model_fields_set:
            data[field] = stored
    for key, value in (updates or {}).items():
        field, stored = _field(key, value)
        if field is not None:
            data[field] = stored
    for key in restore_defaults or ():
        field, _ = _field(key, _RESTORE)
        if field is not None:  # explicitly: validating reads the environment again
            data[field] = type(base).model_fields[field].get_default(call_default_factory=True)
    with overridden_settings(type(base).model_validate(data)) as settings:
        yield settings


_RESTORE: Any = object()


def _field(key: Setting | str, value: Any) -> tuple[str | None, Any]:
    """The ``CeleritySettings`` field ``key`` names and ``value`` as that field takes it.

    The field is None for a setting without one that ``value`` leaves as it is.
    """
    from broker_config.settings import CeleritySettings

    if isinstance(key, str) and key in CeleritySettings.model_fields:
        return key, value
    setting = key if isinstance(key, Setting) else setting_named(str(key))
    if setting.field is not None:
        return setting.field, setting.stored(value)
    if value is not _RESTORE and not setting.accepts(value):
        raise setting.unsupported()
    return None, value


_PROFILE_NAMES = {"Profile", "ProfilesCollection", "load_profiles", "save_profiles"}


def _no_profiles(*args: Any, **kwargs: Any) -> Any:
    raise UnsupportedSettingError(
        "Prefect profiles have no meaning in Celerity: its settings come from CELERITY_* "
        "environment variables and celerity.toml (see `celerity config`)."
    )


def __getattr__(name: str) -> Any:
    # Every PREFECT_* name imports, so that a ported module loads; one Celerity
    # has no meaning for fails where it is used, with its name in the error.
    if name.startswith("PREFECT_"):
        return setting_named(name)
    if name in _PROFILE_NAMES:
        return _no_profiles
    if name == "Settings":
        from broker_config.settings import CeleritySettings

        return CeleritySettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


globals().update(SETTINGS)

__all__ = [
    "Setting",
    "UnsupportedSettingError",
    "get_current_settings",
    "temporary_settings",
    *SETTINGS,
]
