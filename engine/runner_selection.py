"""Choosing the default task runner from settings without importing Celery eagerly."""

from __future__ import annotations

import importlib
from typing import Any

from engine.config import current_settings

CELERY_RUNNER_PATH = "workers.task_runner:CeleryTaskRunner"


def default_task_runner() -> Any:
    """The Celery runner when a broker URL is set (and not overridden), else threads."""
    from engine.task_runners import ThreadPoolTaskRunner

    settings = current_settings()
    wants_celery = settings.runner == "celery" or (
        settings.runner == "auto" and settings.broker_url
    )
    if not wants_celery:
        return ThreadPoolTaskRunner()
    module_name, _, attr = CELERY_RUNNER_PATH.partition(":")
    return getattr(importlib.import_module(module_name), attr)()
