"""Logging configuration: a ``logging.config.dictConfig`` document, ours or the user's.

``setup_logging`` reads the file named by the ``logging_settings_path``
setting (``PREFECT_LOGGING_SETTINGS_PATH``) when it exists, else Celerity's
own ``logging.json``, and applies it. In the file:

- ``${NAME}`` is replaced by a setting's value, named by its environment
  variable (``${CELERITY_LOGGING_LEVEL}``) or by its Prefect name
  (``${PREFECT_LOGGING_LEVEL}``), so a Prefect logging file keeps working;
- any value can be overridden from the environment:
  ``CELERITY_LOGGING_<PATH>_<TO>_<KEY>`` (``CELERITY_LOGGING_HANDLERS_CONSOLE_LEVEL=DEBUG``),
  a comma-separated list for a list value.

JSON files need nothing more; YAML files need PyYAML installed.
Celerity's configuration leaves the root logger alone: ``celerity`` loggers
print through their own console handler and also propagate, so records
reach handlers the application configured (pytest's ``caplog`` included).
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import re
import string
from pathlib import Path
from typing import Any

from engine.exceptions import ConfigurationError

DEFAULT_LOGGING_SETTINGS_PATH = Path(__file__).parent / "logging.json"
ENV_OVERRIDE_PREFIX = "CELERITY_LOGGING_"
EXTRA_LOGGER = "celerity.extra"

# The configuration this process applied last; empty until setup_logging runs.
PROCESS_LOGGING_CONFIG: dict[str, Any] = {}


def load_logging_config(path: Path) -> dict[str, Any]:
    """The configuration in ``path``, with settings substituted and environment overrides.

    Raises ConfigurationError for a ``${NAME}`` that names no setting.
    """
    template = string.Template(Path(path).read_text())
    try:
        text = template.substitute(_template_values())
    except KeyError as missing:
        raise ConfigurationError(
            f"{path} uses ${{{missing.args[0]}}}, which names no Celerity setting."
        ) from None
    config = _parse(text, Path(path))
    return _with_environment_overrides(config)


def setup_logging(incremental: bool | None = None) -> dict[str, Any]:
    """Apply the logging configuration; returns it.

    A second call in a process only updates levels (``incremental``), as
    ``dictConfig`` does. The loggers named by the ``logging_extra_loggers``
    setting get the handlers of ``celerity.extra``, so their records inside
    runs are kept with the run's logs.
    """
    config = load_logging_config(_config_path())
    if incremental is None:
        incremental = bool(PROCESS_LOGGING_CONFIG)
    config.setdefault("incremental", incremental)
    try:
        logging.config.dictConfig(config)
    except ValueError:
        if not incremental:
            raise
        # An incremental update cannot add what the first one lacked: apply it whole.
        return setup_logging(incremental=False)
    if not config["incremental"]:
        _attach_extra_loggers()
    PROCESS_LOGGING_CONFIG.update(config)
    return config


def ensure_logging_setup() -> None:
    """Run ``setup_logging`` if this process has not yet."""
    if not PROCESS_LOGGING_CONFIG:
        setup_logging()


def _config_path() -> Path:
    from engine.config import current_settings

    named = current_settings().logging_settings_path
    if named and Path(named).expanduser().exists():
        return Path(named).expanduser()
    return DEFAULT_LOGGING_SETTINGS_PATH


def _attach_extra_loggers() -> None:
    from engine.settings import PREFECT_LOGGING_EXTRA_LOGGERS

    handlers = logging.getLogger(EXTRA_LOGGER).handlers
    for name in PREFECT_LOGGING_EXTRA_LOGGERS.value():
        logger = logging.getLogger(name)
        for handler in handlers:
            if handler not in logger.handlers:
                logger.addHandler(handler)


def _template_values() -> dict[str, str]:
    """Every setting as text, under its environment variable and its Prefect name."""
    from broker_config.settings import ENV_PREFIX
    from engine.config import current_settings
    from engine.settings.setting import SETTINGS

    settings = current_settings()
    values = {
        f"{ENV_PREFIX}{name.upper()}": _text(getattr(settings, name))
        for name in type(settings).model_fields
    }
    for setting in SETTINGS.values():
        if setting.field is not None:
            values[setting.name] = _text(getattr(settings, setting.field))
    if settings.debug_mode:
        values[f"{ENV_PREFIX}LOGGING_LEVEL"] = values["PREFECT_LOGGING_LEVEL"] = "DEBUG"
    # logging takes level names in capitals only; the setting may be "info"
    return {
        name: value.upper() if name.endswith("_LEVEL") else value for name, value in values.items()
    }


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _parse(text: str, path: Path) -> dict[str, Any]:
    if path.suffix == ".json":
        parsed = json.loads(text)
    else:
        try:
            import yaml
        except ImportError:
            raise ConfigurationError(
                f"{path} is YAML: install PyYAML (pip install pyyaml), or write it as JSON."
            ) from None
        parsed = yaml.safe_load(text)
    if not isinstance(parsed, dict):
        raise ConfigurationError(f"{path} does not hold a logging configuration mapping.")
    return parsed


def _env_name(path: tuple[str, ...]) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", ENV_OVERRIDE_PREFIX + "_".join(path)).upper()


def _with_environment_overrides(config: dict[str, Any]) -> dict[str, Any]:
    flat = _flatten(config)
    for path, value in flat.items():
        override = os.environ.get(_env_name(path))
        if override:
            flat[path] = override.split(",") if isinstance(value, list) else override
    return _unflatten(flat)


def _flatten(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    flat: dict[tuple[str, ...], Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, (*prefix, key)))
        else:
            flat[(*prefix, key)] = value
    return flat


def _unflatten(flat: dict[tuple[str, ...], Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return tree
