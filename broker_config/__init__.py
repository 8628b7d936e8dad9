"""Settings, queue declarations and the Celery configuration derived from them."""

from broker_config.settings import CeleritySettings, get_settings, masked_settings, reset_settings

__all__ = ["CeleritySettings", "get_settings", "masked_settings", "reset_settings"]
