"""The input graph of a task run: the upstream futures its arguments name, which of
them failed, and the arguments with futures and states replaced by their values.

The runners use ``Upstreams`` to record a run's inputs (which upstream task runs
each parameter names), to hold it until its upstreams are done and to decide
whether it may run, all from one walk; the task engine uses ``resolve_inputs``
just before it calls the function. Arguments are passed as they are: a collection is rebuilt
only when it holds a future or a state to replace, so ``identity(x) is x``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from engine.exceptions import RunRecordArgumentError
from engine.futures import BaseFuture, PrefectFlowRunFuture
from engine.schemas import FlowRun, RunBase
from engine.states import State
from engine.utilities.annotations import BaseAnnotation, allow_failure, opaque, quote
from engine.utilities.collections import visit_collection

# Plain values never hold a future or a state: they are returned at once.
_ATOMIC_TYPES = frozenset({int, float, str, bytes, bool, type(None), complex})


# --- the upstream set ---------------------------------------------------------------------


class Upstreams:
    """The upstreams of one call, found in one walk of its arguments and ``wait_for``.

    ``futures`` is what a runner waits for; ``failed()`` then names the finished
    upstreams that did not complete and are not wrapped in ``allow_failure``,
    and ``inputs`` is what the run's record keeps (``TaskRun.task_inputs``),
    all without walking the arguments again.

    ``inputs`` maps each parameter that names upstream task runs (futures, or
    states that carry a task run id, at any depth; ``allow_failure`` included,
    ``quote`` not) to their ids, and ``wait_for`` to those it names. Parameters
    naming none are left out (Prefect lists them with an empty list), so a run
    without upstreams records ``{}``.
    """

    __slots__ = ("futures", "inputs", "_required", "_states", "_allowed_only")

    def __init__(self, parameters: Mapping[str, Any] | None, wait_for: Any = None) -> None:
        walk = _Walk()
        if parameters:
            for name, value in parameters.items():
                walk.parameter(name, value)
        walk.parameter("wait_for", wait_for)
        # Kept while the run waits (a gate's callback holds this object): lists,
        # not the walk's dicts, and one list for both when nothing is allowed to fail.
        self._required = list(walk.required.values())
        self._states = walk.states
        self.inputs = walk.inputs
        allowed_only = [f for k, f in walk.optional.items() if k not in walk.required]
        self._allowed_only = {f.task_run_id for f in allowed_only} if allowed_only else _NONE
        self.futures = self._required + allowed_only if allowed_only else self._required

    def take_inputs(self) -> dict[str, list[str]]:
        """``inputs``, handed over to the run's record: this object, which a waiting
        run's gate holds, keeps no reference to them (a fan-in's ids can be many)."""
        inputs = self.inputs
        if inputs:
            self.inputs = {}
        return inputs

    def failed(self) -> list[State[Any]]:
        """States of required upstreams (futures or states) that did not complete."""
        failed = [f.state for f in self._required if not f.completed()]
        return failed + [s for s in self._states if not s.is_completed()]

    def allows_failure(self, future: BaseFuture[Any]) -> bool:
        """Whether ``future`` is an upstream only inside ``allow_failure``."""
        return future.task_run_id in self._allowed_only


_NONE: frozenset[uuid.UUID] = frozenset()


class _Walk:
    """What one walk of a call's arguments collects.

    A plain object passed down rather than a closure calling itself: such a
    closure is a reference cycle per task run, left for the garbage collector.
    """

    __slots__ = ("required", "optional", "states", "inputs", "ids", "repeated")

    def __init__(self) -> None:
        # Keyed by run id: two future objects for one run are one upstream
        # (the gate counts it once, deferral lists it once).
        self.required: dict[uuid.UUID, BaseFuture[Any]] = {}
        self.optional: dict[uuid.UUID, BaseFuture[Any]] = {}
        self.states: list[State[Any]] = []
        self.inputs: dict[str, list[str]] = {}
        # The task run ids the parameter being walked names, and whether one
        # may be there twice (only then is the list de-duplicated).
        self.ids: list[uuid.UUID] | None = None
        self.repeated = False

    def parameter(self, name: str | None, value: Any) -> None:
        """Collect the upstreams in ``value``; record their ids under ``name`` (if given)."""
        if type(value) in _ATOMIC_TYPES:
            return  # the common case: a plain value names no upstream
        if name is None:
            _collect(value, False, self)
            return
        self.ids, self.repeated = [], False
        _collect(value, False, self)
        ids, self.ids = self.ids, None
        if ids:
            # Each id once, in the order first met.
            unique = dict.fromkeys(ids) if self.repeated else ids
            self.inputs[name] = [str(run_id) for run_id in unique]

    def future(self, future: BaseFuture[Any], allowed: bool) -> None:
        run_id = future.task_run_id
        if self.ids is not None and not isinstance(future, PrefectFlowRunFuture):
            # (A subflow's future names a flow run, not a task run.)
            self.repeated = self.repeated or run_id in self.required or run_id in self.optional
            self.ids.append(run_id)
        (self.optional if allowed else self.required)[run_id] = future

    def state(self, state: State[Any], allowed: bool) -> None:
        if not allowed:
            self.states.append(state)
        run_id = state.state_details.task_run_id
        if self.ids is not None and run_id is not None:
            self.repeated = True  # states are not keyed by run: check the whole list
            self.ids.append(run_id)

    def futures(self) -> list[BaseFuture[Any]]:
        """Required upstreams first, then those only inside ``allow_failure``."""
        required = self.required
        return list(required.values()) + [f for k, f in self.optional.items() if k not in required]


def _collect(expr: Any, allowed: bool, walk: _Walk) -> None:
    def visit(item: Any) -> Any:
        if isinstance(item, quote):
            return item
        if isinstance(item, allow_failure):
            _collect(item.value, True, walk)
            return None  # already walked: don't descend again
        if isinstance(item, opaque):
            _collect_top(item.value, allowed, walk)
            return None
        if isinstance(item, (BaseFuture, State)):
            _collect_top(item, allowed, walk)
            return None  # a state is a leaf, not a container
        if isinstance(item, RunBase):
            raise _run_record_argument(item)
        return item

    visit_collection(expr, visit)


def _run_record_argument(record: RunBase) -> RunRecordArgumentError:
    kind = type(record).__name__
    name = "flow_run" if isinstance(record, FlowRun) else "task_run"
    return RunRecordArgumentError(
        f"Passing a `{kind}` object as a task argument is not supported: the state it "
        f"holds would be taken for an upstream task run's. Pass the fields the task "
        f"needs (e.g. `{name}.id`), or wrap it as `opaque({name})` to pass it as it is."
    )


def _collect_top(item: Any, allowed: bool, walk: _Walk) -> None:
    if isinstance(item, BaseFuture):
        walk.future(item, allowed)
    elif isinstance(item, State):
        walk.state(item, allowed)


def upstream_futures(expr: Any) -> list[BaseFuture[Any]]:
    """The futures ``expr`` depends on (quoted values excluded)."""
    walk = _Walk()
    walk.parameter(None, expr)
    return walk.futures()


def failed_upstreams(parameters: dict[str, Any], wait_for: Any = None) -> list[State[Any]]:
    """States of finished upstreams that did not complete and are not ``allow_failure``."""
    return Upstreams(parameters, wait_for).failed()


# --- resolving arguments --------------------------------------------------------------------


def resolve_inputs(parameters: dict[str, Any]) -> tuple[dict[str, Any], list[State[Any]]]:
    """Parameters with futures and states replaced by values, and the upstreams that failed.

    ``allow_failure`` upstreams contribute their exception; ``quote`` is passed as-is;
    ``opaque`` resolves a future or state it wraps but does not look inside the value.
    A value that holds nothing to resolve is passed on as the same object.
    """
    failed: list[State[Any]] = []
    resolved = {name: _resolve(value, False, failed) for name, value in parameters.items()}
    return resolved, failed


def _resolve(expr: Any, allowed: bool, failed: list[State[Any]]) -> Any:
    kind = type(expr)
    if kind in _ATOMIC_TYPES:
        return expr
    if isinstance(expr, (BaseFuture, State)):
        value = _upstream_value(expr, allowed, failed)
        if isinstance(value, RunBase):
            raise _run_record_argument(value)  # an upstream returned a run record
        return value
    if isinstance(expr, BaseAnnotation):
        return _resolve_annotation(expr, allowed, failed)
    if kind in (list, tuple, set, frozenset) or isinstance(expr, (list, tuple, set, frozenset)):
        return _resolve_sequence(expr, allowed, failed)
    if isinstance(expr, dict):
        return _resolve_mapping(expr, allowed, failed)
    if dataclasses.is_dataclass(expr) and not isinstance(expr, type):
        return _resolve_dataclass(expr, allowed, failed)
    if isinstance(expr, BaseModel) and not type(expr).__module__.startswith("engine."):
        return _resolve_model(expr, allowed, failed)
    return expr


def _resolve_annotation(expr: BaseAnnotation[Any], allowed: bool, failed: list[State[Any]]) -> Any:
    if isinstance(expr, quote):
        return expr.unwrap()
    if isinstance(expr, opaque):
        inner = expr.unwrap()
        if isinstance(inner, (BaseFuture, State)):
            return _upstream_value(inner, allowed, failed)
        return inner
    return _resolve(expr.unwrap(), allowed or isinstance(expr, allow_failure), failed)


def _resolve_sequence(expr: Any, allowed: bool, failed: list[State[Any]]) -> Any:
    items = [_resolve(item, allowed, failed) for item in expr]
    if all(new is old for new, old in zip(items, expr, strict=True)):
        return expr
    if isinstance(expr, tuple) and hasattr(expr, "_fields"):
        return type(expr)(*items)
    return type(expr)(items)


def _resolve_mapping(expr: dict[Any, Any], allowed: bool, failed: list[State[Any]]) -> Any:
    pairs = [(_resolve(k, allowed, failed), _resolve(v, allowed, failed)) for k, v in expr.items()]
    if all(nk is k and nv is v for (nk, nv), (k, v) in zip(pairs, expr.items(), strict=True)):
        return expr
    return type(expr)(pairs)


def _resolve_dataclass(expr: Any, allowed: bool, failed: list[State[Any]]) -> Any:
    changed = {}
    for field in dataclasses.fields(expr):
        if not field.init:
            continue
        old = getattr(expr, field.name)
        new = _resolve(old, allowed, failed)
        if new is not old:
            changed[field.name] = new
    return dataclasses.replace(expr, **changed) if changed else expr


def _resolve_model(expr: BaseModel, allowed: bool, failed: list[State[Any]]) -> Any:
    changed = {}
    for name in type(expr).model_fields:
        old = getattr(expr, name)
        new = _resolve(old, allowed, failed)
        if new is not old:
            changed[name] = new
    return expr.model_copy(update=changed) if changed else expr


def _upstream_value(
    upstream: BaseFuture[Any] | State[Any], allowed: bool, failed: list[State[Any]]
) -> Any:
    if isinstance(upstream, BaseFuture):
        upstream.wait()
        return _value_of(upstream.state, allowed, failed)
    return _value_of(upstream, allowed, failed)


def _value_of(state: State[Any], allowed: bool, failed: list[State[Any]]) -> Any:
    if state.is_completed():
        return state.result()
    if allowed:
        return state.result(raise_on_failure=False)
    failed.append(state)
    return None


__all__ = ["Upstreams", "failed_upstreams", "resolve_inputs", "upstream_futures"]
