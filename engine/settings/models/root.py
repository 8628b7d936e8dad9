"""``Settings`` for Prefect code: Celerity's one settings model, ``CeleritySettings``."""

from broker_config.settings import CeleritySettings as Settings

__all__ = ["Settings"]
