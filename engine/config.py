"""The engine's view of settings: read lazily so ``engine`` imports stay light."""

from __future__ import annotations

from typing import Any


def current_settings() -> Any:
    """The effective ``broker_config`` settings (environment, config file, defaults)."""
    from broker_config.settings import get_settings

    return get_settings()
