"""Cache policies: how a task run's cache key is computed.

A task with a cache policy (or a ``cache_key_fn``) looks its key up before it
runs; a hit ends the run ``Cached`` with the stored value, a miss runs it and
stores the result under the key (until ``cache_expiration``). Policies add up:
``INPUTS + TASK_SOURCE``; ``INPUTS - "verbose"`` ignores one parameter.

Every policy computes a key from whatever it is given: ``compute_key(task_ctx=None,
inputs=None, flow_parameters=None)`` is valid, and a policy that needs
something absent answers None (no key). A compound policy hashes the keys of
its parts that are not None. ``configure(key_storage=, lock_manager=,
isolation_level=)`` returns a copy that says where records go and how they
are locked::

    policy = INPUTS.configure(key_storage="/shared/cache", isolation_level="SERIALIZABLE")
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cloudpickle


def _sorted_members(value: set[Any] | frozenset[Any]) -> list[Any]:
    return sorted(value, key=repr)


# Applied to each input before hashing, by exact type: a set pickles in an order that
# changes between processes (string hashing is salted), so it would miss the cache.
STABLE_TRANSFORMS: dict[type, Callable[[Any], Any]] = {
    set: _sorted_members,
    frozenset: _sorted_members,
}


def _refuse(value: Any) -> Any:
    raise TypeError(f"Unable to serialize unknown type: {type(value)}")


def hash_objects(*objects: Any, raise_on_failure: bool = False) -> str:
    """A stable hex digest of ``objects``: as JSON when they are plain data, else pickled.

    JSON comes first because it is the same in every process (a pickled dict
    or set may not be). Objects neither can serialize give "" or, with
    ``raise_on_failure``, a ValueError that says why both failed.
    """
    try:
        payload = json.dumps(objects, sort_keys=True, default=_refuse).encode()
    except (TypeError, ValueError) as json_error:
        try:
            payload = cloudpickle.dumps(objects)
        except Exception as pickle_error:  # cloudpickle raises many kinds
            if not raise_on_failure:
                return ""
            raise ValueError(
                "Unable to create hash - objects could not be serialized.\n"
                f"  JSON error: {json_error}\n  Pickle error: {pickle_error}"
            ) from pickle_error
    return hashlib.sha256(payload).hexdigest()


# The options ``configure`` sets; adding policies that disagree on one is an error.
_CONFIG_CONFLICTS = {
    "key_storage": "Cannot add CachePolicies with different storage locations.",
    "lock_manager": "Cannot add CachePolicies with different lock implementations.",
    "isolation_level": "Cannot add CachePolicies with different isolation levels.",
}


@dataclass
class CachePolicy:
    """Computes a cache key from the task run context and its inputs (None: don't cache).

    ``key_storage`` (a storage, URL or directory), ``lock_manager`` and
    ``isolation_level`` say where the records of this policy's keys live and
    how concurrent runs of one key are serialized; None means the defaults.
    """

    key_storage: Any = None
    isolation_level: Any = None
    lock_manager: Any = None

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any] | None,
        flow_parameters: dict[str, Any] | None,
        **kwargs: Any,
    ) -> str | None:
        """The key for one task run, or None when this policy gives it no key."""
        raise NotImplementedError

    def configure(
        self, key_storage: Any = None, lock_manager: Any = None, isolation_level: Any = None
    ) -> CachePolicy:
        """A copy of this policy with the given options (None leaves one unchanged)."""
        given = {
            "key_storage": key_storage,
            "lock_manager": lock_manager,
            "isolation_level": isolation_level,
        }
        return dataclasses.replace(self, **{k: v for k, v in given.items() if v is not None})

    def is_configured(self) -> bool:
        """Whether ``configure`` named where its records live or how runs of one key
        are serialized (the task engine then keeps them as the policy says)."""
        return any(
            value is not None
            for value in (self.key_storage, self.lock_manager, self.isolation_level)
        )

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if isinstance(other, _None):
            return self
        return CompoundCachePolicy(policies=[self, other], **_merged_config(self, other))

    def __sub__(self, name: str) -> CachePolicy:
        """Ignore parameter ``name``: only policies that read inputs change."""
        if not isinstance(name, str):
            raise TypeError("Only parameter names can be subtracted from a cache policy.")
        return self

    @classmethod
    def from_cache_key_fn(cls, cache_key_fn: Callable[..., str | None]) -> CachePolicy:
        """A policy whose key is ``cache_key_fn(context, parameters)``."""
        return CacheKeyFnPolicy(cache_key_fn=cache_key_fn)

    def _config(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _CONFIG_CONFLICTS}


def _merged_config(*policies: CachePolicy) -> dict[str, Any]:
    """The options several policies share; raises ValueError when two set one differently."""
    merged: dict[str, Any] = dict.fromkeys(_CONFIG_CONFLICTS)
    for policy in policies:
        for name, value in policy._config().items():
            if value is None:
                continue
            if merged[name] is not None and merged[name] != value:
                raise ValueError(_CONFIG_CONFLICTS[name])
            merged[name] = value
    return merged


@dataclass
class CompoundCachePolicy(CachePolicy):
    """Several policies whose keys are hashed together (keys that are None are left out).

    Nested compound policies are flattened, equal policies kept once, and
    several ``Inputs`` policies merge into one that excludes every name any
    of them excludes.
    """

    policies: list[CachePolicy] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.policies = _normalised(self.policies)

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any] | None,
        flow_parameters: dict[str, Any] | None,
        **kwargs: Any,
    ) -> str | None:
        keys = [
            policy.compute_key(task_ctx, inputs, flow_parameters, **kwargs)
            for policy in self.policies
        ]
        present = sorted(key for key in keys if key is not None)
        return hash_objects(*present) if present else None

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if isinstance(other, _None):
            return self
        config = _merged_config(self, other)
        return CompoundCachePolicy(policies=[*self.policies, other], **config)

    def __sub__(self, name: str) -> CachePolicy:
        if not isinstance(name, str):
            raise TypeError("Only parameter names can be subtracted from a cache policy.")
        if not any(_reads_inputs(policy) for policy in self.policies):
            return self
        return CompoundCachePolicy(
            policies=[policy - name for policy in self.policies], **self._config()
        )


def _normalised(policies: list[CachePolicy]) -> list[CachePolicy]:
    flat: list[CachePolicy] = []
    for policy in policies:
        flat.extend(policy.policies if isinstance(policy, CompoundCachePolicy) else [policy])
    inputs = [policy for policy in flat if isinstance(policy, Inputs)]
    if len(inputs) > 1:
        excluded = sorted({name for policy in inputs for name in policy.exclude})
        merged = Inputs(exclude=excluded, **_merged_config(*inputs))
        later = {id(policy) for policy in inputs[1:]}
        flat = [
            merged if policy is inputs[0] else policy for policy in flat if id(policy) not in later
        ]
    unique: list[CachePolicy] = []
    for policy in flat:
        if policy not in unique:
            unique.append(policy)
    return unique


def _reads_inputs(policy: CachePolicy) -> bool:
    if isinstance(policy, CompoundCachePolicy):
        return any(_reads_inputs(part) for part in policy.policies)
    return isinstance(policy, Inputs)


@dataclass
class Inputs(CachePolicy):
    """The task run's parameters (minus ``exclude``)."""

    exclude: list[str] = field(default_factory=list)

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any] | None,
        flow_parameters: dict[str, Any] | None,
        **kwargs: Any,
    ) -> str | None:
        if not inputs:
            return None
        kept = {name: _stable(value) for name, value in inputs.items() if name not in self.exclude}
        try:
            return hash_objects(kept, raise_on_failure=True)
        except ValueError as exc:
            raise ValueError(f"{exc}\n\n{_UNHASHABLE_HELP}") from exc

    def __sub__(self, name: str) -> CachePolicy:
        if not isinstance(name, str):
            raise TypeError("Only parameter names can be subtracted from a cache policy.")
        return dataclasses.replace(self, exclude=[*self.exclude, name])


_UNHASHABLE_HELP = (
    "This often occurs when task inputs contain objects that cannot be cached "
    "like locks, file handles, or other system resources.\n"
    "To resolve this, you can:\n"
    "  1. Exclude these arguments by defining a custom `cache_key_fn`\n"
    "  2. Disable caching by passing `cache_policy=NO_CACHE`"
)


def _stable(value: Any) -> Any:
    # Looked up at call time: tests and users may replace the table.
    transform = STABLE_TRANSFORMS.get(type(value))
    return transform(value) if transform is not None else value


@dataclass
class TaskSource(CachePolicy):
    """The task function's source code: editing the task invalidates its cache."""

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any] | None,
        flow_parameters: dict[str, Any] | None,
        **kwargs: Any,
    ) -> str | None:
        task = getattr(task_ctx, "task", None)
        if task is None:
            return None
        return hashlib.sha256(_source_of(task).encode()).hexdigest()


def _source_of(task: Any) -> str:
    stored = getattr(task, "source_code", None)
    if isinstance(stored, str):  # kept by whoever built the task (it may have no file)
        return stored
    fn = getattr(task, "fn", task)
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        return code.co_code.hex() if code is not None else repr(fn)


@dataclass
class RunId(CachePolicy):
    """The flow run id (or the task run id outside a flow): caching within one run."""

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any] | None,
        flow_parameters: dict[str, Any] | None,
        **kwargs: Any,
    ) -> str | None:
        run = getattr(task_ctx, "task_run", None)
        if run is None:
            return None
        return str(run.flow_run_id or run.id)


@dataclass
class FlowParameters(CachePolicy):
    """The flow run's parameters: caching per distinct flow input."""

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any] | None,
        flow_parameters: dict[str, Any] | None,
        **kwargs: Any,
    ) -> str | None:
        if not flow_parameters:
            return None
        return hash_objects(flow_parameters, raise_on_failure=True)


@dataclass
class _None(CachePolicy):
    """Never cache; adding it to another policy gives that policy."""

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any] | None,
        flow_parameters: dict[str, Any] | None,
        **kwargs: Any,
    ) -> str | None:
        return None

    def __add__(self, other: CachePolicy) -> CachePolicy:
        return other


@dataclass
class CacheKeyFnPolicy(CachePolicy):
    """Wraps a ``cache_key_fn(context, parameters)`` (without one: no key)."""

    cache_key_fn: Callable[..., str | None] | None = None

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any] | None,
        flow_parameters: dict[str, Any] | None,
        **kwargs: Any,
    ) -> str | None:
        if self.cache_key_fn is None:
            return None
        return self.cache_key_fn(task_ctx, inputs)


INPUTS = Inputs()
TASK_SOURCE = TaskSource()
RUN_ID = RunId()
FLOW_PARAMETERS = FlowParameters()
NONE = _None()
NO_CACHE = NONE
DEFAULT = INPUTS + TASK_SOURCE + RUN_ID


def task_input_hash(context: Any, arguments: dict[str, Any]) -> str | None:
    """A ``cache_key_fn`` keyed on the task, its code and its inputs (the seed API's helper).

    The function's bytecode is part of the key, so changing what the task does
    (even under the same name) misses the cache. None if the inputs cannot be hashed.
    """
    code = getattr(getattr(context.task, "fn", None), "__code__", None)
    code_hex = code.co_code.hex() if code is not None else ""
    return hash_objects(context.task.task_key, code_hex, arguments) or None


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
    "STABLE_TRANSFORMS",
    "task_input_hash",
]
