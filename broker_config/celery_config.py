"""The mapping from Celerity settings to Celery configuration keys.

The values favour "never lose a task" over throughput: late acks, requeue on
worker loss and a prefetch of one, as the failure model in the design asks.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

from broker_config.queues import declared_queues
from broker_config.settings import CeleritySettings, get_settings

# workers/ registers the kombu serializer under these names; only the names
# live here so that configuration does not import the envelope code.
ENVELOPE_SERIALIZER = "celerity-envelope"
ENVELOPE_CONTENT_TYPE = "application/x-celerity-envelope"

# Seconds Redis waits for an ack before redelivering a message; it must exceed
# the longest task run, or a slow run is delivered twice.
VISIBILITY_TIMEOUT_SECONDS = 3600

# kombu's Redis transport, made to log and drop a message it cannot decode
# instead of stopping the worker; named, not imported, like the serializer.
REDIS_TRANSPORT = "workers.transport:Transport"


PUBLISH_RETRY_POLICY = {
    "max_retries": 10,
    "interval_start": 0.1,
    "interval_step": 0.2,
    "interval_max": 0.5,
}


def transport_options(settings: CeleritySettings) -> dict[str, Any]:
    """Return kombu's Redis transport options for these settings."""
    return {
        "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.socket_timeout,
        "socket_keepalive": settings.socket_keepalive,
        "health_check_interval": settings.health_check_interval,
    }


def broker_transport(broker_url: str | None) -> dict[str, Any]:
    """Return the Celery keys that select Celerity's transport for a Redis broker URL."""
    scheme = urlsplit(broker_url or "").scheme
    if scheme not in ("redis", "rediss"):
        return {}
    config: dict[str, Any] = {"broker_transport": REDIS_TRANSPORT}
    if scheme == "rediss":
        # kombu turns TLS on from the scheme's name, which an explicit transport
        # replaces. Certificates are verified, as the run store's client does;
        # ssl_* parameters in the URL still win.
        config["broker_use_ssl"] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    return config


def celery_config(settings: CeleritySettings | None = None) -> dict[str, Any]:
    """Return the Celery configuration (``app.conf.update(...)``) for these settings."""
    settings = settings or get_settings()
    return {
        "broker_url": settings.broker_url,
        **broker_transport(settings.broker_url),
        "broker_transport_options": transport_options(settings),
        "broker_connection_retry_on_startup": True,
        # A publish that fails to connect (Redis restarting) is retried for
        # about 5 s, like the run store's commands; a send lost anyway is
        # resent by the coordinator's reaper.
        "task_publish_retry": True,
        "task_publish_retry_policy": PUBLISH_RETRY_POLICY,
        # Reliability: ack after the run, requeue if the worker dies, take one at a time.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Only signed envelopes are accepted; a content type (not the alias) so
        # the list is valid before workers/ registers the serializer.
        "task_serializer": ENVELOPE_SERIALIZER,
        "accept_content": [ENVELOPE_CONTENT_TYPE],
        # States and results live in the run store, not in Celery's backend.
        "result_backend": None,
        "task_ignore_result": True,
        "task_queues": declared_queues(settings),
        "task_default_queue": settings.default_queue,
        "task_default_exchange": settings.default_queue,
        "task_default_routing_key": settings.default_queue,
        "worker_concurrency": settings.worker_concurrency,
        "worker_pool": settings.worker_pool,
        "worker_enable_remote_control": settings.remote_control,
        # Off by default: each event is a Redis PUBLISH per job. On (-E), Flower
        # and `celery events` see every job from sent to finished.
        "worker_send_task_events": settings.worker_events,
        "task_send_sent_event": settings.worker_events,
    }
