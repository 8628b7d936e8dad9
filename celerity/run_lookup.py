"""Finding a flow run as people name it: its id, a unique prefix of its id (as git
does with commits), or its name.

Example::

    run = find_flow_run(get_store(), "3f2a")          # or "modern-nuthatch", or a full id
"""

from __future__ import annotations

import sys
import uuid

from engine.exceptions import CelerityException, ObjectNotFound
from engine.schemas import FlowRun
from engine.store import keys
from engine.store.base import RunStore, SharedRunStore

# Candidates an ambiguity error lists; more are counted, not shown.
SHOWN_CANDIDATES = 10
_ID_CHARACTERS = frozenset("0123456789abcdef-")


class RunLookupError(CelerityException, LookupError):
    """No flow run, or more than one, answers to what was given; the message says which."""


def find_flow_run(store: RunStore, text: str) -> FlowRun:
    """The one flow run whose id is ``text``, starts with ``text``, or whose name is ``text``.

    An id prefix is tried first; a name only when no id starts with ``text``.
    Raises RunLookupError when none or several match (listing the candidates).
    """
    wanted = text.strip().lower()
    if not wanted:
        raise RunLookupError("no flow run id or name given")
    exact = _by_full_id(store, wanted)
    if exact is not None:
        return exact
    matches = _by_id_prefix(store, wanted) if set(wanted) <= _ID_CHARACTERS else []
    if not matches:
        matches = [run for run in all_flow_runs(store) if run.name.lower() == wanted]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunLookupError(f"no flow run has an id starting with, or the name, {text!r}")
    raise RunLookupError(_ambiguity(text, matches))


def _by_full_id(store: RunStore, text: str) -> FlowRun | None:
    try:
        run_id = uuid.UUID(text)
    except ValueError:
        return None
    try:
        return store.read_flow_run(run_id)
    except ObjectNotFound:
        raise RunLookupError(f"no flow run with id {run_id}") from None


def _by_id_prefix(store: RunStore, prefix: str) -> list[FlowRun]:
    bare = prefix.replace("-", "")
    ids = [i for i in flow_run_ids(store) if str(i).startswith(prefix) or i.hex.startswith(bare)]
    return _existing(store, ids)


def _existing(store: RunStore, ids: list[uuid.UUID]) -> list[FlowRun]:
    runs = []
    for run_id in ids:
        try:
            runs.append(store.read_flow_run(run_id))
        except ObjectNotFound:  # listed in the index, but outlived its retention
            continue
    return runs


def flow_run_ids(store: RunStore) -> list[uuid.UUID]:
    """Every flow run id the store holds, newest first (on Redis, the ids alone: one read)."""
    if isinstance(store, SharedRunStore):
        raw = store.client.zrevrange(keys.flow_runs_index(store.prefix), 0, -1)
        return [uuid.UUID(item.decode() if isinstance(item, bytes) else item) for item in raw]
    return [run.id for run in all_flow_runs(store)]


def all_flow_runs(store: RunStore) -> list[FlowRun]:
    """Every flow run the store holds, newest first."""
    if isinstance(store, SharedRunStore):
        count = store.client.zcard(keys.flow_runs_index(store.prefix))
        return store.list_flow_runs(count) if count else []
    return store.list_flow_runs(sys.maxsize)


def _ambiguity(text: str, matches: list[FlowRun]) -> str:
    lines = [f"{text!r} is ambiguous: {len(matches)} flow runs match; give more of the id:"]
    for run in matches[:SHOWN_CANDIDATES]:
        state = run.state.name if run.state is not None else "-"
        created = run.created.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"  {run.id}  {run.name}  {run.flow_name}  {state}  {created}")
    if len(matches) > SHOWN_CANDIDATES:
        lines.append(f"  ... and {len(matches) - SHOWN_CANDIDATES} more")
    return "\n".join(lines)
