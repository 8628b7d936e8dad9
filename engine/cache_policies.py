"""Cache policies: how a task run's cache key is computed.

A task with a cache policy (or a ``cache_key_fn``) looks its key up before it
runs; a hit ends the run ``Cached`` with the stored value, a miss runs it and
stores the result under the key (until ``cache_expiration``). Policies add up:
``INPUTS + TASK_SOURCE``; ``INPUTS - "verbose"`` ignores one parameter.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cloudpickle


def hash_objects(*objects: Any) -> str:
    """A stable hex digest of picklable objects (empty string if they cannot be pickled)."""
    try:
        payload = cloudpickle.dumps(objects)
    except Exception:  # unpicklable inputs cannot key a cache
        return ""
    return hashlib.sha256(payload).hexdigest()


class CachePolicy:
    """Computes a cache key from the task run context and its inputs (None: don't cache)."""

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        raise NotImplementedError

    def __add__(self, other: CachePolicy) -> CachePolicy:
        return CompoundCachePolicy([self, other])

    def __sub__(self, name: str) -> CachePolicy:
        """Ignore parameter ``name``: only input-based policies change."""
        if not isinstance(name, str):
            raise TypeError("Only parameter names can be subtracted from a cache policy.")
        return self

    def configure(self, **_options: Any) -> CachePolicy:
        """The seed's ``key_storage`` / ``isolation_level`` / ``lock_manager`` options.

        Accepted for ported code and ignored: cache records live in the run store.
        """
        return self

    @classmethod
    def from_cache_key_fn(cls, cache_key_fn: Callable[..., str | None]) -> CachePolicy:
        """A policy whose key is ``cache_key_fn(context, parameters)``."""
        return CacheKeyFnPolicy(cache_key_fn)


@dataclass
class CompoundCachePolicy(CachePolicy):
    """Several policies whose keys are hashed together; any None makes the whole None."""

    policies: list[CachePolicy] = field(default_factory=list)

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        keys = [p.compute_key(task_ctx, inputs, flow_parameters) for p in self.policies]
        if any(k is None for k in keys):
            return None
        return hash_objects(*keys)

    def __add__(self, other: CachePolicy) -> CachePolicy:
        return CompoundCachePolicy([*self.policies, other])

    def __sub__(self, name: str) -> CachePolicy:
        return CompoundCachePolicy([policy - name for policy in self.policies])


@dataclass
class Inputs(CachePolicy):
    """The task run's parameters (minus ``exclude``)."""

    exclude: list[str] = field(default_factory=list)

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        kept = {k: v for k, v in sorted(inputs.items()) if k not in self.exclude}
        return hash_objects(kept) or None

    def __sub__(self, name: str) -> Inputs:
        return Inputs(exclude=[*self.exclude, name])


class TaskSource(CachePolicy):
    """The task function's source code: editing the task invalidates its cache."""

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        try:
            source = inspect.getsource(task_ctx.task.fn)
        except (OSError, TypeError):
            source = task_ctx.task.fn.__code__.co_code.hex()
        return hashlib.sha256(source.encode()).hexdigest()


class RunId(CachePolicy):
    """The flow run id (or the task run id outside a flow): caching within one run."""

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        run = task_ctx.task_run
        return str(run.flow_run_id or run.id)


class FlowParameters(CachePolicy):
    """The flow run's parameters: caching per distinct flow input."""

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        return hash_objects(dict(sorted(flow_parameters.items()))) or None


class _NoCache(CachePolicy):
    """Never cache."""

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        return None


@dataclass
class CacheKeyFnPolicy(CachePolicy):
    """Wraps a ``cache_key_fn(context, parameters)``."""

    cache_key_fn: Callable[..., str | None]

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        return self.cache_key_fn(task_ctx, inputs)


INPUTS = Inputs()
TASK_SOURCE = TaskSource()
RUN_ID = RunId()
FLOW_PARAMETERS = FlowParameters()
NONE = _NoCache()
NO_CACHE = NONE
DEFAULT = INPUTS + TASK_SOURCE + RUN_ID


def task_input_hash(context: Any, arguments: dict[str, Any]) -> str | None:
    """A ``cache_key_fn`` keyed on the task and its inputs (the seed API's helper)."""
    return hash_objects(context.task.task_key, arguments) or None


__all__ = [
    "CachePolicy",
    "CompoundCachePolicy",
    "Inputs",
    "TaskSource",
    "RunId",
    "FlowParameters",
    "CacheKeyFnPolicy",
    "INPUTS",
    "TASK_SOURCE",
    "RUN_ID",
    "FLOW_PARAMETERS",
    "NONE",
    "NO_CACHE",
    "DEFAULT",
    "task_input_hash",
]
