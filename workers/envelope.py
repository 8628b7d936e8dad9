"""Signed envelopes: the only message content our Celery workers accept.

The kombu serializer registered here writes ``<hex HMAC-SHA256>.<JSON body>``
and, on receipt, checks the signature *before* parsing anything. Python objects
inside the body (the task when it is not importable, parameters) are
cloudpickled and base64-encoded, and are unpickled only after the signature
held. A message that fails verification raises in the decoder, so Celery logs
"Can't decode message body" and drops it; the worker keeps serving. The runs
such a message names that have not started end Failed with the reason (see
``fail_unstarted_runs``), so that nobody waits for them forever.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from typing import Any

from kombu.serialization import register

from broker_config.celery_config import ENVELOPE_CONTENT_TYPE, ENVELOPE_SERIALIZER
from engine.exceptions import EnvelopeRejected, SignatureVerificationError
from engine.results import dumps, loads
from engine.signing import SEPARATOR as _SEPARATOR
from engine.signing import Signer

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
            fail_unstarted_runs(raw, str(exc))
            raise

    register(
        ENVELOPE_SERIALIZER,
        encode,
        decode,
        content_type=ENVELOPE_CONTENT_TYPE,
        content_encoding="binary",
    )
    return signer


def fail_unstarted_runs(payload: bytes, reason: str) -> int:
    """End the runs a rejected message names that have not started yet; how many.

    Otherwise a wrong ``CELERITY_SIGNING_KEY`` on one process would leave
    futures and ``flow submit --wait`` waiting forever. Only the JSON is read
    (pickled fields stay base64 text, never loaded), and only runs that no one
    started (Pending task runs, Scheduled or Pending flow runs) are moved: a
    forged message cannot touch work in progress or finished.
    """
    from engine.states import Failed
    from engine.store import get_store

    message = (
        f"{reason} Every worker, coordinator and submitting process must share one "
        "CELERITY_SIGNING_KEY."
    )
    try:
        args = json.loads(payload.partition(_SEPARATOR)[2])[0]
        store = get_store()
        failed = 0
        for run_id, is_task in _run_ids(args[0] if args else None):
            run = store.read_task_run(run_id) if is_task else store.read_flow_run(run_id)
            if run.state is None or run.state.type.value not in ("PENDING", "SCHEDULED"):
                continue
            state = Failed(message=message)
            if is_task:
                state.state_details.task_run_id = run_id
            state.state_details.flow_run_id = getattr(run, "flow_run_id", None) or run_id
            store.propose_state(run_id, state)
            failed += 1
        return failed
    except Exception as exc:  # a message we cannot make sense of: nothing more to do
        logger.debug("No run of the rejected message could be failed: %r", exc)
        return 0


def _run_ids(body: Any) -> list[tuple[uuid.UUID, bool]]:
    """(run id, is a task run) for each run a task-run envelope or flow-run message names."""
    if not isinstance(body, dict):
        return []
    if "flow_run_id" in body:
        return [(uuid.UUID(body["flow_run_id"]), False)]
    return [(uuid.UUID(entry["id"]), True) for entry in body.get("runs") or []]


def pack(value: Any) -> str:
    """A Python value as base64 cloudpickle text for the envelope."""
    return base64.b64encode(dumps(value)).decode()


def unpack(text: str) -> Any:
    """The value ``pack`` wrote (only ever called on verified envelopes)."""
    return loads(base64.b64decode(text))
