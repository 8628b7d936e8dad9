"""Signed envelopes: the only message content our Celery workers accept.

The kombu serializer registered here writes ``<hex HMAC-SHA256>.<JSON body>``
and, on receipt, checks the signature *before* parsing anything. Python objects
inside the body (the task when it is not importable, parameters) are
cloudpickled and base64-encoded, and are unpickled only after the signature
held. A message that fails verification raises in the decoder, so Celery logs
"Can't decode message body" and drops it; the worker keeps serving. Nothing in
such a message is acted on, with one exception: a *flow-run* message names a
Scheduled flow run that only a coordinator would ever start, so that run ends
Failed with the reason (``fail_unstarted_flow_run``) instead of waiting
forever. The task runs of a dropped task-run message are resent by their
coordinator's reaper (see ``workers.reaper``), which fails them with the reason
when no worker ever takes them.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from kombu.serialization import register

from broker_config.celery_config import ENVELOPE_CONTENT_TYPE, ENVELOPE_SERIALIZER
from engine.exceptions import EnvelopeRejected, SignatureVerificationError
from engine.results import dumps, loads
from engine.signing import SEPARATOR as _SEPARATOR
from engine.signing import Signer
from workers.protocol import FlowRunMessage

logger = logging.getLogger("celerity.envelope")


def register_envelope_serializer(signer: Signer) -> Signer:
    """Register the signed-JSON serializer with kombu under our content type."""

    def encode(body: Any) -> bytes:
        return signer.sign(json.dumps(body, separators=(",", ":")).encode())

    def decode(payload: bytes | str) -> Any:
        raw = payload.encode() if isinstance(payload, str) else payload
        try:
            return json.loads(signer.verify(raw))
        except (EnvelopeRejected, SignatureVerificationError) as exc:
            logger.error("%s The message was dropped without being deserialized.", exc)
            fail_unstarted_flow_run(raw, str(exc))
            raise

    register(
        ENVELOPE_SERIALIZER,
        encode,
        decode,
        content_type=ENVELOPE_CONTENT_TYPE,
        content_encoding="binary",
    )
    return signer


def fail_unstarted_flow_run(payload: bytes, reason: str) -> bool:
    """End the Scheduled flow run a rejected flow-run message names; whether it did.

    Otherwise a coordinator with another ``CELERITY_SIGNING_KEY`` would leave
    ``flow submit --wait`` waiting forever. Only the JSON is read (never a
    pickle), and only a run that no one started is moved: a forged message can
    fail a submitted run that has not started, never touch work in progress.
    """
    from engine.states import Failed
    from engine.store import get_store

    try:
        args = json.loads(payload.partition(_SEPARATOR)[2])[0]
        flow_run_id = FlowRunMessage.from_json(args[0]).flow_run_id
        store = get_store()
        run = store.read_flow_run(flow_run_id)
        if run.state is None or run.state.type.value not in ("PENDING", "SCHEDULED"):
            return False
        failed = Failed(
            message=f"{reason} Every worker, coordinator and submitting process must share "
            "one CELERITY_SIGNING_KEY."
        )
        failed.state_details.flow_run_id = flow_run_id
        store.propose_state(flow_run_id, failed)
        return True
    except Exception as exc:  # not a flow-run message, or nothing to fail
        logger.debug("No flow run of the rejected message was failed: %r", exc)
        return False


def pack(value: Any) -> str:
    """A Python value as base64 cloudpickle text for the envelope."""
    return base64.b64encode(dumps(value)).decode()


def unpack(text: str) -> Any:
    """The value ``pack`` wrote (only ever called on verified envelopes)."""
    return loads(base64.b64decode(text))
