"""kombu's Redis transport, made to drop a message it cannot decode instead of dying.

kombu decodes each message it pops from a queue (a Redis list) outside Celery's
error handling: one LPUSH of bytes that are not JSON, or of JSON that is not a
kombu message, raised out of the worker's event loop and stopped the worker for
good. This transport logs such a message at WARNING with its queue and the
reason, drops it (it is already popped) and keeps serving. A well-formed message
whose body Celery then refuses (a content type we do not accept, a signature
that does not verify) is logged the same way before Celery drops it.

``broker_config.celery_config`` makes Celery use this transport for ``redis://``
and ``rediss://`` brokers (the ``broker_transport`` setting).
"""

from __future__ import annotations

import binascii
import logging
from collections.abc import Callable
from queue import Empty
from typing import Any

from kombu.transport import redis, virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

logger = logging.getLogger("celerity.transport")

# What kombu reads from a message before Celery sees it, and the type it needs.
_FIELDS: dict[str, type] = {
    "body": str,
    "headers": dict,
    "properties": dict,
    "content-type": str,
    "content-encoding": str,
}
# The body encodings kombu's Redis channel decodes (absent, plain or base64).
_BODY_ENCODINGS = (None, "", "utf-8", "UTF-8", "base64")


def drop(queue: str, reason: str, exc_info: bool = False) -> None:
    """Log that a message popped from ``queue`` is dropped, and why."""
    logger.warning(
        "Dropped an undecodable message from queue %r: %s", queue, reason, exc_info=exc_info
    )


def json_error(item: bytes | str) -> str | None:
    """Why kombu cannot JSON-decode ``item``; None when it can."""
    try:
        loads(bytes_to_str(item))
    except Exception as exc:  # anything kombu's decoder raises makes it undecodable
        return f"not JSON ({type(exc).__name__}: {exc})"
    return None


def why_malformed(raw: Any) -> str | None:
    """Why decoded JSON ``raw`` is not a kombu message we can deliver; None when it is."""
    if not isinstance(raw, dict):
        return f"JSON {type(raw).__name__}, not a kombu message"
    for field, kind in _FIELDS.items():
        if not isinstance(raw.get(field), kind):
            return f"{field!r} is missing or not a {kind.__name__}"
    properties = raw["properties"]
    if not isinstance(properties.get("delivery_tag"), str):
        return "properties.delivery_tag is missing or not a str"
    info = properties.get("delivery_info")
    if not isinstance(info, dict) or not all(
        isinstance(info.get(key), str) for key in ("exchange", "routing_key")
    ):
        return "properties.delivery_info lacks exchange and routing_key"
    encoding = properties.get("body_encoding")
    if encoding not in _BODY_ENCODINGS:
        return f"unknown body_encoding {encoding!r}"
    return None


class Message(virtual.Message):
    """A kombu message that knows its queue and logs a body that cannot be decoded."""

    queue = "(unknown)"  # set when it is delivered to a consumer

    def decode(self) -> Any:
        try:
            return super().decode()
        except Exception as exc:
            # Celery rejects or acks the message after this; it only says why.
            drop(self.queue, f"{type(exc).__name__}: {exc}")
            raise


class Channel(redis.Channel):
    """A Redis channel that drops what it cannot decode, with a WARNING."""

    Message = Message
    _popped: tuple[Any, ...] | None = None

    def basic_consume(
        self, queue: str, no_ack: bool, callback: Callable[..., Any], consumer_tag: str, **kw: Any
    ) -> Any:
        def on_message(message: Message) -> Any:
            message.queue = queue
            try:
                return callback(message)
            except self._passed_through():
                raise
            except Exception as exc:
                self._drop_unhandled(message, exc)
                return None

        return super().basic_consume(queue, no_ack, on_message, consumer_tag, **kw)

    def _passed_through(self) -> tuple[type[BaseException], ...]:
        # Celery restarts its consumer on the transport's errors: the message is not
        # to blame. kombu counts KeyError among them, which a bad message raises.
        errors = (*self.connection.connection_errors, *self.connection.channel_errors)
        return (MemoryError, *(error for error in errors if error is not KeyError))

    def _drop_unhandled(self, message: Message, exc: Exception) -> None:
        # Celery handles a bad message in its consumer, but some (an unknown task
        # without an id, ...) raise out of its handlers and stopped the worker.
        reason = f"the consumer failed on it ({type(exc).__name__}: {exc})"
        drop(message.queue, reason, exc_info=True)
        if not message.acknowledged:
            message.reject(requeue=False)

    def _create_client(self, asynchronous: bool = False) -> Any:
        client = super()._create_client(asynchronous)
        if asynchronous:  # the client that sends BRPOP
            client.set_response_callback("BRPOP", self._keep_popped)
        return client

    def _keep_popped(self, reply: Any, **options: Any) -> tuple[Any, ...] | None:
        # (key, item), remembered so that a failed decode can name its queue.
        self._popped = tuple(reply) if reply else None
        return self._popped

    def _brpop_read(self, **options: Any) -> Any:
        self._popped = None
        try:
            return super()._brpop_read(**options)
        except Exception:
            popped = self._popped
            reason = json_error(popped[1]) if popped else None
            if popped is None or reason is None:
                raise  # not a decoding failure: kombu and Celery handle it
            drop(self._queue_of(popped[0]), reason)
            raise Empty() from None

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        while True:  # Empty from kombu ends the loop
            try:
                raw = super()._get(queue)
            except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError) as exc:
                drop(queue, f"not JSON ({type(exc).__name__}: {exc})")
                continue
            reason = why_malformed(raw)
            if reason is None:
                return raw
            drop(queue, reason)

    def _queue_of(self, key: bytes) -> str:
        name = bytes_to_str(key)
        if self.global_keyprefix and name.startswith(self.global_keyprefix):
            name = name[len(self.global_keyprefix) :]
        return name.rsplit(self.sep, 1)[0]


class Transport(redis.Transport):
    """kombu's Redis transport with :class:`Channel`; publishing is unchanged."""

    Channel = Channel

    def _deliver(self, message: Any, queue: str) -> None:
        reason = why_malformed(message)
        if reason is not None:
            drop(queue, reason)
            return
        try:
            super()._deliver(message, queue)
        except binascii.Error as exc:  # kombu decodes the body before any consumer sees it
            drop(queue, f"body is not base64 ({exc})")
