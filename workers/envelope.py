"""Signed envelopes: the only message content our Celery workers accept.

The kombu serializer registered here writes ``<hex HMAC-SHA256>.<JSON body>``
and, on receipt, checks the signature *before* parsing anything. Python objects
inside the body (the task when it is not importable, parameters) are
cloudpickled and base64-encoded, and are unpickled only after the signature
held. A message that fails verification raises in the decoder, so Celery logs
"Can't decode message body" and drops it; the worker keeps serving.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from typing import Any

from kombu.serialization import register

from broker_config.celery_config import ENVELOPE_CONTENT_TYPE, ENVELOPE_SERIALIZER
from engine.exceptions import EnvelopeRejected
from engine.results import dumps, loads

logger = logging.getLogger("celerity.envelope")

_SEPARATOR = b"."


class Signer:
    """HMAC-SHA256 signing and verification with one shared key."""

    def __init__(self, key: str | bytes) -> None:
        self._key = key.encode() if isinstance(key, str) else key

    def sign(self, body: bytes) -> bytes:
        digest = hmac.new(self._key, body, hashlib.sha256).hexdigest().encode()
        return digest + _SEPARATOR + body

    def verify(self, payload: bytes) -> bytes:
        """The body if the signature holds; raises EnvelopeRejected otherwise."""
        digest, sep, body = payload.partition(_SEPARATOR)
        if not sep or len(digest) != 64:
            raise EnvelopeRejected("Rejected a message without a Celerity signature.")
        expected = hmac.new(self._key, body, hashlib.sha256).hexdigest().encode()
        if not hmac.compare_digest(digest, expected):
            raise EnvelopeRejected(
                "Rejected a message whose signature does not match (tampered or wrong key)."
            )
        return body


def register_envelope_serializer(signing_key: str) -> Signer:
    """Register the signed-JSON serializer with kombu under our content type."""
    signer = Signer(signing_key)

    def encode(body: Any) -> bytes:
        return signer.sign(json.dumps(body, separators=(",", ":")).encode())

    def decode(payload: bytes | str) -> Any:
        raw = payload.encode() if isinstance(payload, str) else payload
        try:
            return json.loads(signer.verify(raw))
        except EnvelopeRejected as exc:
            logger.error("%s The message was dropped without being deserialized.", exc)
            raise

    register(
        ENVELOPE_SERIALIZER,
        encode,
        decode,
        content_type=ENVELOPE_CONTENT_TYPE,
        content_encoding="binary",
    )
    return signer


def pack(value: Any) -> str:
    """A Python value as base64 cloudpickle text for the envelope."""
    return base64.b64encode(dumps(value)).decode()


def unpack(text: str) -> Any:
    """The value ``pack`` wrote (only ever called on verified envelopes)."""
    return loads(base64.b64decode(text))
