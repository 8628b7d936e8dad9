"""Queue declarations and the routing rule that picks a task run's queue."""

from __future__ import annotations

from collections.abc import Iterable

from kombu import Exchange, Queue

from broker_config.settings import CeleritySettings, get_settings


def make_queue(name: str) -> Queue:
    """Return a durable queue bound to a direct exchange of the same name."""
    # One exchange per queue keeps routing keys equal to queue names, which is
    # what Celery's own tools (``celery -Q``, Flower) assume.
    return Queue(name, Exchange(name, type="direct"), routing_key=name, durable=True)


def queue_names(settings: CeleritySettings | None = None) -> list[str]:
    """Return every queue name the settings mention: default, flows, routed, in order."""
    settings = settings or get_settings()
    names = [settings.default_queue, settings.flow_queue, *settings.task_routes.values()]
    return list(dict.fromkeys(names))


def declared_queues(settings: CeleritySettings | None = None) -> tuple[Queue, ...]:
    """Return the kombu queues Celery should declare for these settings."""
    return tuple(make_queue(name) for name in queue_names(settings))


def route_for(
    task_queue: str | None,
    tags: Iterable[str],
    settings: CeleritySettings | None = None,
) -> str:
    """Return the queue a task run is published to.

    An explicit queue wins, then the first tag (in the order given) that has a
    rule in ``settings.task_routes``, then ``settings.default_queue``.

    >>> s = CeleritySettings(task_routes={"io": "io-queue"})
    >>> route_for(None, ["cpu", "io"], s)
    'io-queue'
    """
    settings = settings or get_settings()
    if task_queue:
        return task_queue
    for tag in tags:
        queue = settings.task_routes.get(tag)
        if queue:
            return queue
    return settings.default_queue
