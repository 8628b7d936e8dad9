"""Where Prefect code imports ``get_current_settings`` and ``temporary_settings`` from."""

from engine.settings import get_current_settings, temporary_settings

__all__ = ["get_current_settings", "temporary_settings"]
