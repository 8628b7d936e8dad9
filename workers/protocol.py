"""The wire protocol of a fleet: one typed message per kind of Celery job.

An ``Envelope`` carries task runs of one task to one queue. Every producer
(the Celery runner, a worker sending on released continuations, a requeue)
builds one of these and every consumer parses one with ``Envelope.from_json``;
nothing else builds or reads the dict form. The JSON travels signed (see
``workers.envelope``), so by the time ``from_json`` runs the bytes came from a
key holder; it still checks the shape, because a message from an older or newer
Celerity must be refused with a reason, not half-read.

Version 3: each entry carries only the run id and its packed parameters (the
worker reads the task run from the store), and the envelope says when it was
sent, which lets a worker report how far it has consumed a queue (see
``workers.recovery``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from engine.exceptions import EnvelopeRejected

ENVELOPE_VERSION = 3
# How many task run ids a job's argsrepr lists (an envelope carries up to
# CELERITY_TASK_BATCH_SIZE runs; the label stays short).
SUMMARY_RUN_IDS = 10


class RunEntry(NamedTuple):
    """One task run in an envelope: its id and its parameters (packed, see ``pack``).

    A named tuple rather than a dataclass: a map builds one per task run, and a
    tuple is the cheapest immutable record Python has.
    """

    id: uuid.UUID
    parameters: str

    def to_json(self) -> dict[str, str]:
        return {"id": str(self.id), "parameters": self.parameters}

    @classmethod
    def from_json(cls, doc: Any) -> RunEntry:
        if not isinstance(doc, dict) or not isinstance(doc.get("parameters"), str):
            raise EnvelopeRejected(f"Malformed run entry: {_preview(doc)}")
        try:
            return cls(uuid.UUID(str(doc["id"])), doc["parameters"])
        except (KeyError, ValueError) as exc:
            raise EnvelopeRejected(f"Malformed run entry id ({exc!r})") from None


@dataclass(frozen=True, slots=True)
class Envelope:
    """Task runs of one task for one queue, with the context they run in."""

    task_name: str
    task_ref: dict[str, Any]
    context: dict[str, Any]
    queue: str | None
    runs: tuple[RunEntry, ...]
    sent_at: float = field(default_factory=time.time)

    def with_runs(self, runs: list[RunEntry] | tuple[RunEntry, ...]) -> Envelope:
        """The same envelope for other runs, stamped with a new send time."""
        return replace(self, runs=tuple(runs), sent_at=time.time())

    def summary(self) -> str:
        """What Celery shows for the job instead of the whole body (its argsrepr).

        The task, its flow run and the task run ids (the first few), so that
        Flower and ``celery inspect`` say which runs a job carries.
        """
        shown = ", ".join(str(entry.id) for entry in self.runs[:SUMMARY_RUN_IDS])
        more = len(self.runs) - SUMMARY_RUN_IDS
        flow_run = (self.context.get("flow_run") or {}).get("id")
        where = f" of flow run {flow_run}" if flow_run else ""
        return (
            f"{self.task_name} x{len(self.runs)}{where}: "
            f"task runs [{shown}{f', +{more} more' if more > 0 else ''}]"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "v": ENVELOPE_VERSION,
            "task": {"name": self.task_name, "ref": self.task_ref},
            "context": self.context,
            "queue": self.queue,
            "sent": self.sent_at,
            "runs": [entry.to_json() for entry in self.runs],
        }

    @classmethod
    def from_json(cls, doc: Any) -> Envelope:
        """Parse the JSON form; EnvelopeRejected says what is wrong with it."""
        if not isinstance(doc, dict):
            raise EnvelopeRejected(f"An envelope must be a JSON object, got {_preview(doc)}")
        if doc.get("v") != ENVELOPE_VERSION:
            raise EnvelopeRejected(
                f"Unknown envelope version {doc.get('v')!r} (this worker reads "
                f"{ENVELOPE_VERSION}): run the same Celerity version on every process."
            )
        try:
            task = doc["task"]
            return cls(
                task_name=str(task.get("name")),
                task_ref=dict(task["ref"]),
                context=dict(doc["context"]),
                queue=doc.get("queue"),
                runs=tuple(RunEntry.from_json(entry) for entry in doc["runs"]),
                sent_at=float(doc.get("sent") or 0.0),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise EnvelopeRejected(f"Malformed envelope ({exc!r}): {_preview(doc)}") from None


@dataclass(frozen=True, slots=True)
class FlowRunMessage:
    """A submitted flow run for the coordinators (``celerity.run_flow``).

    ``flow`` names the flow: ``{"import_path": "pkg.mod:fn", "file": ...}`` or
    ``{"file": "/abs/flows.py", "function": "fn"}``. ``parameters`` are JSON; a
    run started in Python with other values keeps them signed in the store
    (``FlowRun.parameters_ref``), which the coordinator prefers.
    """

    flow_run_id: uuid.UUID
    flow: dict[str, Any]
    parameters: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "flow_run_id": str(self.flow_run_id),
            "flow": self.flow,
            "parameters": self.parameters,
        }

    @classmethod
    def from_json(cls, doc: Any) -> FlowRunMessage:
        """Parse the JSON form; EnvelopeRejected says what is wrong with it."""
        try:
            return cls(
                flow_run_id=uuid.UUID(str(doc["flow_run_id"])),
                flow=dict(doc.get("flow") or {}),
                parameters=dict(doc.get("parameters") or {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            reason = f"Malformed flow-run message ({exc!r}): {_preview(doc)}"
            raise EnvelopeRejected(reason) from None


def _preview(doc: Any, limit: int = 120) -> str:
    text = repr(doc)
    return text if len(text) <= limit else text[:limit] + "..."


__all__ = ["ENVELOPE_VERSION", "Envelope", "FlowRunMessage", "RunEntry"]
