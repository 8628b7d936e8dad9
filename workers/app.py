"""The Celery app factory: one app per settings, with Celerity's tasks registered."""

from __future__ import annotations

from celery import Celery

from broker_config.celery_config import celery_config
from broker_config.settings import CeleritySettings, get_settings
from engine.exceptions import ConfigurationError
from engine.signing import fleet_signer
from workers.envelope import register_envelope_serializer

_apps: dict[str, Celery] = {}


def create_app(settings: CeleritySettings | None = None) -> Celery:
    """A Celery app configured from settings, with the task-run and flow-run tasks."""
    settings = settings or get_settings()
    if not settings.broker_url:
        raise ConfigurationError(
            "CELERITY_BROKER_URL is not set: the Celery runner needs a Redis URL."
        )
    # Every fleet process (worker, coordinator, producer, flow on the Celery
    # runner) builds its app here: without a key, none of them starts.
    register_envelope_serializer(fleet_signer(settings))
    app = Celery("celerity", set_as_current=False)
    app.conf.update(celery_config(settings))
    # accept_content (the signed envelope only) guards the task queues; Celery
    # would apply it, and the envelope serializer, to the remote-control
    # mailbox too, so `celery inspect` / `control` (JSON) were refused.
    # JSON deserializes no code, and the mailbox is consumed only when
    # CELERITY_REMOTE_CONTROL is on.
    app.control.mailbox.accept = ["json"]
    app.control.mailbox.serializer = "json"
    from workers import coordinator, execution

    execution.register(app)
    coordinator.register(app)
    return app


def get_app(settings: CeleritySettings | None = None) -> Celery:
    """The app for these settings, created once per process."""
    settings = settings or get_settings()
    key = f"{settings.broker_url}|{settings.key_prefix}"
    if key not in _apps:
        _apps[key] = create_app(settings)
    return _apps[key]
