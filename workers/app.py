"""The Celery app factory: one app per settings, with Celerity's tasks registered.

``create_app`` builds the app of fleet processes (workers, coordinators,
producers): it signs and verifies envelopes, so it needs the fleet's key.
``create_tools_app`` builds the app of Celery's own tools (``celery inspect``,
``control``, ``events``, Flower; see ``workers.celery_app``): same broker and
queues, no key, so a monitoring process can read the fleet but never forge a job.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.app.amqp import AMQP
from celery.worker.request import Request

from broker_config.celery_config import celery_config
from broker_config.settings import CeleritySettings, get_settings
from engine.exceptions import ConfigurationError
from engine.signing import fleet_signer
from workers.envelope import register_envelope_serializer

_apps: dict[str, Celery] = {}

EVENTS_OFF = (
    "events are off on this worker: start it with `celerity worker start -E` "
    "(or CELERITY_WORKER_EVENTS=true) for task events and heartbeats"
)
NOT_A_WORKER = (
    "workers.celery_app is the app of Celery's tools (inspect, control, events, flower); "
    "it holds no signing key and runs no jobs. Start workers with `celerity worker start` "
    "and coordinators with `celerity coordinator start`."
)


class ReadableRequest(Request):
    """A job as ``celery inspect active|reserved`` shows it: its argsrepr, never its body.

    Celery's own ``info()`` returns the decoded arguments, which for a task-run
    job is the envelope with its base64 cloudpickled parameters. The argsrepr
    the producer wrote (``Envelope.summary()``: the task and its run ids) says
    what the job is without that noise.
    """

    def info(self, safe: bool = False) -> dict[str, Any]:
        """Celery's request info with the readable argument summary in place of the body."""
        info: dict[str, Any] = super().info(safe=True)
        return info


class CelerityTask(Task):
    """The base of Celerity's Celery tasks: only the request's display differs."""

    Request = ReadableRequest


class LabelledAMQP(AMQP):
    """Task-sent events name a job as its worker's events do: by its shadow name.

    A task-run job is sent as ``celerity.run_tasks`` with the shadow
    ``celerity.run_tasks:<task>``; the worker reports it under the shadow, but
    Celery's task-sent event carries the real name, and a monitor that gets
    that event late (it comes from another process) keeps its name.
    """

    def _create_task_sender(self) -> Any:
        send = super()._create_task_sender()

        def send_task_message(producer: Any, name: str, message: Any, *args: Any, **kw: Any) -> Any:
            shadow = message.headers.get("shadow")
            if shadow and message.sent_event is not None:
                message.sent_event["name"] = shadow
            return send(producer, name, message, *args, **kw)

        return send_task_message


def _require_broker(settings: CeleritySettings) -> None:
    if not settings.broker_url:
        raise ConfigurationError(
            "CELERITY_BROKER_URL is not set: the Celery runner needs a Redis URL."
        )


def _configured_app(settings: CeleritySettings, cls: type[Celery] = Celery) -> Celery:
    """An app with the settings' Celery configuration and a JSON remote-control mailbox."""
    _require_broker(settings)
    app = cls("celerity", set_as_current=False, task_cls=CelerityTask, amqp=LabelledAMQP)
    app.conf.update(celery_config(settings))
    # accept_content (the signed envelope only) guards the task queues; Celery
    # would apply it, and the envelope serializer, to the remote-control
    # mailbox too, so `celery inspect` / `control` (JSON) were refused.
    # JSON deserializes no code, and the mailbox is consumed only when
    # CELERITY_REMOTE_CONTROL is on.
    app.control.mailbox.accept = ["json"]
    app.control.mailbox.serializer = "json"
    return app


def _explain_events_off() -> None:
    """``celery control enable_events|disable_events`` on a worker started without ``-E``
    says how to turn events on, instead of Celery's "event dispatcher unavailable"."""
    from celery.worker import control

    for name in ("enable_events", "disable_events"):
        builtin = control.Panel.data[name]
        if getattr(builtin, "celerity_hint", False):
            continue

        def command(state: Any, _builtin: Any = builtin) -> Any:
            if state.consumer.event_dispatcher is None:
                return control.nok(EVENTS_OFF)
            return _builtin(state)

        command.celerity_hint = True  # type: ignore[attr-defined]
        command.__doc__ = builtin.__doc__
        control.Panel.data[name] = command


def create_app(settings: CeleritySettings | None = None) -> Celery:
    """A Celery app configured from settings, with the task-run and flow-run tasks."""
    settings = settings or get_settings()
    _require_broker(settings)
    # Every fleet process (worker, coordinator, producer, flow on the Celery
    # runner) builds its app here: without a key, none of them starts.
    register_envelope_serializer(fleet_signer(settings))
    app = _configured_app(settings)
    from workers import coordinator, execution

    execution.register(app)
    coordinator.register(app)
    _explain_events_off()
    return app


class ToolsApp(Celery):
    """The app of Celery's tools: it reads the fleet and refuses to run as a worker."""

    @property
    def Worker(self) -> Any:  # noqa: N802 (Celery's attribute name)
        raise ConfigurationError(NOT_A_WORKER)


def create_tools_app(settings: CeleritySettings | None = None) -> Celery:
    """A keyless app for ``celery -A workers.celery_app inspect|control|events|flower``.

    It knows the broker, the transport and the queues, and the mailbox speaks
    JSON as the workers' does. It registers no envelope serializer, so nothing
    sent through it (Flower's task API, ``celery call``) can be a job a worker
    would accept.
    """
    return _configured_app(settings or get_settings(), ToolsApp)


def get_app(settings: CeleritySettings | None = None) -> Celery:
    """The app for these settings, created once per process."""
    settings = settings or get_settings()
    key = f"{settings.broker_url}|{settings.key_prefix}"
    if key not in _apps:
        _apps[key] = create_app(settings)
    return _apps[key]
