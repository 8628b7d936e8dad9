"""The Redis run store: runs, states, logs and run inputs shared by every process.

Layout (key names in ``engine.store.keys``):

- each run is one JSON string ``{"kind": "flow"|"task", "run": {...}}``;
- its accepted states are a list of State JSON, oldest first;
- flow runs are indexed in a sorted set scored by creation time; a flow run's
  task run ids are a list in creation order;
- logs are a list of RunLog JSON per flow run; run inputs are plain strings.

``propose_state`` applies the shared rules of ``engine.orchestration`` in
Python, then writes with a Lua compare-and-set that succeeds only if the run is
still exactly as read; a task run's final state and its completion event (on
the flow run's stream) are written in that same atomic step, and so is the
lease of a Running task run. A run entering a final state gets a TTL of
``retention_seconds`` on everything it owns; a forced move out of a final
state removes that TTL again.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Literal, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from engine.exceptions import ObjectAlreadyExists, ObjectNotFound, StoreUnavailable
from engine.leases import worker_identity
from engine.orchestration import (
    OrchestrationResult,
    SetStateStatus,
    entering_fields,
    evaluate_transition,
)
from engine.schemas import FlowRun, RunLog, TaskRun
from engine.states import State, now
from engine.store import keys
from engine.store.base import SharedRunStore
from engine.store.continuations import defer_keys, lua

Kind = Literal["flow", "task"]
P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600

# The queue progress mark outlives any message wait that matters.
PROGRESS_TTL_SECONDS = 7 * 24 * 3600


def _task_run_lease(state: State[Any]) -> str:
    # A task run is leased to the worker running it (also while it waits to
    # retry); any other state drops the lease. A lapsed lease means the worker
    # was lost.
    leased = state.is_running() or (state.is_scheduled() and state.name == "AwaitingRetry")
    return (state.state_details.worker or "") if leased else ""


def _flow_run_lease(state: State[Any]) -> tuple[str, str]:
    # A flow run is leased to the coordinator that took it (Pending with a
    # worker), then to the process that runs it from Running until it is final,
    # Paused included (the process waits): (lease, active-set change).
    if state.is_final():
        return "", "-"
    if state.is_running():
        return worker_identity(), "+"
    if state.is_pending() and state.state_details.worker:
        return state.state_details.worker, "+"
    return "=", ""


def _is_completion(state: State[Any]) -> bool:
    """States that finish a task run's future: final ones and NotReady."""
    return state.is_final() or state.name == "NotReady"


def masked_url(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _reachable(method: Callable[P, T]) -> Callable[P, T]:
    """Turn Redis connection failures into StoreUnavailable naming the URL."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            url = masked_url(getattr(args[0], "url", "?"))
            raise StoreUnavailable(
                f"Cannot reach the run store at {url} ({type(exc).__name__}: {exc}). "
                "Is Redis running?"
            ) from exc

    return wrapper


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _encode_run(kind: Kind, run: FlowRun | TaskRun) -> str:
    return f'{{"kind":"{kind}","run":{run.model_dump_json(exclude_none=True)}}}'


def _decode_run(raw: Any) -> tuple[Kind, FlowRun | TaskRun]:
    stored = json.loads(raw)
    if stored["kind"] == "flow":
        return "flow", FlowRun.model_validate(stored["run"])
    return "task", TaskRun.model_validate(stored["run"])


class _KnownRun:
    """A run as this process last primed or wrote it: the stored bytes, decoded once.

    Decoding a run (JSON, then pydantic validation of the run and its state)
    is the largest cost of a proposal after the round trip; a worker's two
    proposals per task run would otherwise decode the same run three times.
    The decoded run is only read (proposals copy it), never changed.
    """

    __slots__ = ("raw", "_decoded")

    def __init__(self, raw: bytes, decoded: tuple[Kind, FlowRun | TaskRun] | None = None) -> None:
        self.raw = raw
        self._decoded = decoded

    def decoded(self) -> tuple[Kind, FlowRun | TaskRun]:
        if self._decoded is None:
            self._decoded = _decode_run(self.raw)
        return self._decoded


def _decode_runs(raws: Iterable[Any]) -> list[Any]:
    """The runs in ``raws``, skipping keys that were missing (expired)."""
    return [_decode_run(raw)[1] for raw in raws if raw is not None]


# A restart of redis-server takes about a second: commands that fail to connect
# are retried with backoff for about five seconds (0.05 s doubling, capped at
# 0.5 s) before StoreUnavailable. A compare-and-set whose reply was lost is
# safe to retry: it then finds its own state in place (see ``_propose``).
STORE_RETRIES = 12


class LuaScript:
    """A Lua script run by its SHA, loaded into the server on first use or after a restart.

    redis-py's ``Script`` does this too, but checks at every call whether it
    was given a pipeline through a runtime protocol check that costs several
    microseconds; a worker runs our scripts twice per task run, so direct
    calls skip it and pipelines still go through redis-py's ``Script`` (which
    loads missing scripts before the batch).
    """

    def __init__(self, client: redis.Redis, text: str) -> None:
        self._script = client.register_script(text)
        self._client = client

    def __call__(self, keys: list[Any], args: list[Any], client: Any = None) -> Any:
        if client is not None:
            return self._script(keys=keys, args=args, client=client)
        try:
            return self._client.evalsha(self._script.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            self._client.script_load(self._script.script)
            return self._client.evalsha(self._script.sha, len(keys), *keys, *args)


def _connect(url: str, **options: Any) -> redis.Redis:
    given = {name: value for name, value in options.items() if value is not None}
    return redis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), STORE_RETRIES),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        **given,
    )


class RedisRunStore(SharedRunStore):
    """Runs and states in Redis, shared by coordinators, workers and the CLI."""

    def __init__(
        self,
        url: str,
        prefix: str = keys.DEFAULT_PREFIX,
        retention_seconds: int = DEFAULT_RETENTION_SECONDS,
        client: redis.Redis | None = None,
        *,
        socket_timeout: float | None = None,
        socket_keepalive: bool | None = None,
        health_check_interval: int | None = None,
        lease_seconds: float = 30.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.retention_seconds = retention_seconds
        self.lease_seconds = lease_seconds
        self._owns_client = client is None
        self._client = client or _connect(
            url,
            socket_timeout=socket_timeout,
            socket_keepalive=socket_keepalive,
            health_check_interval=health_check_interval,
        )
        self._create_run = LuaScript(self._client, lua("create_run"))
        self._cas = LuaScript(self._client, lua("compare_and_set"))
        self._defer = LuaScript(self._client, lua("defer"))
        self._prime = LuaScript(self._client, lua("prime"))
        self._known: dict[uuid.UUID, _KnownRun] = {}

    @property
    def client(self) -> redis.Redis:
        """The Redis connection (the event stream and result storage share it)."""
        return self._client

    def __repr__(self) -> str:
        return f"RedisRunStore({masked_url(self.url)!r}, prefix={self.prefix!r})"

    # --- flow runs ---------------------------------------------------------------

    @_reachable
    def create_flow_run(self, flow_run: FlowRun) -> FlowRun:
        """Store a new flow run; raises ObjectAlreadyExists if the id is taken."""
        index = keys.flow_runs_index(self.prefix)
        score = flow_run.created.timestamp()
        if not self._create_run(**self._create_args(flow_run, "flow", index, score)):
            raise ObjectAlreadyExists(f"Run {flow_run.id} already exists.")
        return flow_run

    @_reachable
    def read_flow_run(self, flow_run_id: uuid.UUID) -> FlowRun:
        """The flow run with that id; raises ObjectNotFound."""
        kind, run = self._read(flow_run_id)
        if kind != "flow":
            raise ObjectNotFound(f"No flow run {flow_run_id}.")
        return run  # type: ignore[return-value]

    @_reachable
    def list_flow_runs(self, limit: int = 50) -> list[FlowRun]:
        """The most recently created flow runs, newest first (by ``created``)."""
        index = keys.flow_runs_index(self.prefix)
        while True:
            ids = [_text(i) for i in self._client.zrevrange(index, 0, limit - 1)]
            if not ids:
                return []
            raws = self._client.mget([keys.run(self.prefix, uuid.UUID(i)) for i in ids])
            expired = [i for i, raw in zip(ids, raws, strict=True) if raw is None]
            if not expired:
                return _decode_runs(raws)
            self._client.zrem(index, *expired)  # their runs outlived retention

    # --- task runs ---------------------------------------------------------------

    @_reachable
    def create_task_runs(self, task_runs: Iterable[TaskRun]) -> list[TaskRun]:
        """Store many new task runs in one pipelined round trip.

        Each run is created atomically; if some ids already exist the others
        are still stored and ObjectAlreadyExists names the duplicates.
        """
        runs = list(task_runs)
        pipe = self._client.pipeline(transaction=False)
        for run in runs:
            index = keys.flow_task_runs(self.prefix, run.flow_run_id)
            self._create_run(**self._create_args(run, "task", index, 0.0), client=pipe)
        created = pipe.execute()
        duplicates = [str(run.id) for run, ok in zip(runs, created, strict=True) if not ok]
        if duplicates:
            shown = ", ".join(duplicates[:5]) + (" ..." if len(duplicates) > 5 else "")
            raise ObjectAlreadyExists(f"{len(duplicates)} run(s) already exist: {shown}")
        return runs

    @_reachable
    def read_task_run(self, task_run_id: uuid.UUID) -> TaskRun:
        """The task run with that id; raises ObjectNotFound."""
        kind, run = self._read(task_run_id)
        if kind != "task":
            raise ObjectNotFound(f"No task run {task_run_id}.")
        return run  # type: ignore[return-value]

    @_reachable
    def read_task_runs(self, flow_run_id: uuid.UUID) -> list[TaskRun]:
        """Every task run of a flow run, in creation order."""
        ids = self._client.lrange(keys.flow_task_runs(self.prefix, flow_run_id), 0, -1)
        if not ids:
            return []
        raws = self._client.mget([keys.run(self.prefix, uuid.UUID(_text(i))) for i in ids])
        return _decode_runs(raws)

    def _create_args(
        self, run: FlowRun | TaskRun, kind: Kind, index: str, score: float
    ) -> dict[str, Any]:
        state = run.state.model_dump_json() if run.state is not None else ""
        index_type = "zset" if kind == "flow" else "list"
        return {
            "keys": [keys.run(self.prefix, run.id), keys.history(self.prefix, run.id), index],
            "args": [_encode_run(kind, run), state, index_type, repr(score), str(run.id)],
        }

    def _read(self, run_id: uuid.UUID) -> tuple[Kind, FlowRun | TaskRun]:
        raw = self._client.get(keys.run(self.prefix, run_id))
        if raw is None:
            raise ObjectNotFound(f"No run with id {run_id}.")
        return _decode_run(raw)

    # --- states ------------------------------------------------------------------

    @_reachable
    def propose_state(
        self, run_id: uuid.UUID, state: State[Any], force: bool = False
    ) -> OrchestrationResult:
        """Atomically set a run's state if the transition rules allow it.

        The rules run here in Python on the run as last seen; a Lua script then
        writes only if the stored run is still exactly that (compare-and-set),
        else hands back the fresh run for another evaluation. A task run that
        reaches a final state (or NotReady) appends a completion event to its
        flow run's stream in the same atomic step.
        """
        return self._propose(run_id, state, force, only_if_lapsed=False)

    def _propose(
        self, run_id: uuid.UUID, state: State[Any], force: bool, only_if_lapsed: bool
    ) -> OrchestrationResult:
        known = self._known.get(run_id)
        raw = known.raw if known else self._client.get(keys.run(self.prefix, run_id))
        while True:
            if raw is None:
                raise ObjectNotFound(f"No run with id {run_id}.")
            # A retry (the compare-and-set failed) decodes the fresh run it got back.
            kind, run = known.decoded() if known else _decode_run(raw)
            known = None
            if run.state is not None and run.state.id == state.id:
                # Our own write, whose reply was lost to a connection error and
                # that the client's retry then saw: it is in effect.
                return OrchestrationResult(status=SetStateStatus.ACCEPT, state=state)
            status, reason, delay = evaluate_transition(run.state, state, force)
            if status != SetStateStatus.ACCEPT:
                self._known.pop(run_id, None)
                return OrchestrationResult(
                    status=status, state=run.state, reason=reason, delay_seconds=delay
                )
            new_run = run.model_copy(update=entering_fields(run, state))
            new_raw = _encode_run(kind, new_run)
            outcome = self._compare_and_set(kind, run, raw, new_raw, state, only_if_lapsed)
            if outcome == 1 or isinstance(outcome, list):
                break
            if outcome == 0:  # a sweeper found the lease renewed meanwhile
                return OrchestrationResult(status=SetStateStatus.REJECT, state=run.state)
            raw = outcome if outcome != -1 else None
        self._remember(run_id, new_raw, state, (kind, new_run))
        if isinstance(outcome, list):
            self.hand_over(outcome[1:])
        if kind == "flow" and (state.is_final() or (run.state and run.state.is_final())):
            self._set_flow_lifetime(run.id, state.is_final())
        return OrchestrationResult(status=status, state=state)

    def _compare_and_set(
        self,
        kind: Kind,
        run: FlowRun | TaskRun,
        expected: Any,
        new_raw: str,
        state: State[Any],
        only_if_lapsed: bool = False,
    ) -> Any:
        was_final = run.state is not None and run.state.is_final()
        ttl = self.retention_seconds if state.is_final() else (-1 if was_final else 0)
        flow_run_id = getattr(run, "flow_run_id", None)
        announce = flow_run_id is not None and kind == "task" and _is_completion(state)
        events_key = keys.events(self.prefix, flow_run_id) if flow_run_id and announce else ""
        lease, active = (
            _flow_run_lease(state) if kind == "flow" else (_task_run_lease(state), "")
        )
        return self._cas(
            keys=[
                keys.run(self.prefix, run.id),
                keys.history(self.prefix, run.id),
                events_key,
                keys.lease(self.prefix, run.id),
                keys.waiters(self.prefix, run.id),
                keys.active_flow_runs(self.prefix),
            ],
            args=[
                expected,
                new_raw,
                state.model_dump_json(exclude_none=True),
                ttl,
                str(run.id) if announce else "",
                lease,
                int(self.lease_seconds * 1000),
                ("1" if state.is_completed() else "0") if announce else "",
                active,
                "1" if only_if_lapsed else "",
                str(run.id),
            ],
        )

    def defer(
        self, run_id: uuid.UUID, envelope: bytes, upstreams: list[tuple[uuid.UUID, bool]]
    ) -> int:
        """Park a signed ``envelope`` until its upstreams finish (see ``continuations``).

        Returns -1 if an upstream already failed (and is not allowed to), 0 if
        all already completed (send it now), else how many it waits for.
        """
        ids = [upstream for upstream, _ in upstreams]
        flags = ["1" if allowed else "0" for _, allowed in upstreams]
        return int(
            self._defer(
                keys=defer_keys(self.prefix, run_id, ids),
                args=[envelope, self.retention_seconds, *flags],
            )
        )

    def cancel_deferred(self, run_id: uuid.UUID) -> bool:
        """Take a parked envelope back; False if it was already released."""
        taken = self._client.getdel(keys.pending(self.prefix, run_id))
        self._client.delete(keys.remaining(self.prefix, run_id))
        return taken is not None

    def lease_holder(self, run_id: uuid.UUID) -> str | None:
        """The process holding a run's lease, or None if it lapsed (or was never taken)."""
        holder = self._client.get(keys.lease(self.prefix, run_id))
        return _text(holder) if holder is not None else None

    def renew_leases(self, run_ids: list[uuid.UUID]) -> None:
        """Extend the leases of runs this process holds (one round trip)."""
        pipe = self._client.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.pexpire(keys.lease(self.prefix, run_id), int(self.lease_seconds * 1000))
        pipe.execute()

    def _remember(
        self,
        run_id: uuid.UUID,
        raw: str,
        state: State[Any],
        decoded: tuple[Kind, FlowRun | TaskRun],
    ) -> None:
        # The next proposal for this run (usually from this process) can skip
        # its read and its decoding; a stale entry only costs one failed
        # compare-and-set.
        if state.is_final() or len(self._known) > 10_000:
            self._known.pop(run_id, None)
        else:
            self._known[run_id] = _KnownRun(raw.encode(), decoded)

    def prime(
        self, run_ids: list[uuid.UUID], claimant: str, queue: str | None, sent_at: float
    ) -> dict[uuid.UUID, str]:
        """Claim and read many runs in one round trip; their lease holders before the claim.

        The runs are remembered so that their next proposals skip the read.
        """
        if not run_ids:
            return {}
        script_keys = [keys.queue_progress(self.prefix, queue or "")]
        for run_id in run_ids:
            script_keys += [keys.run(self.prefix, run_id), keys.lease(self.prefix, run_id)]
        values = self._prime(
            keys=script_keys,
            args=[claimant, int(self.lease_seconds * 1000), repr(sent_at), PROGRESS_TTL_SECONDS],
        )
        holders: dict[uuid.UUID, str] = {}
        for run_id, raw, holder in zip(run_ids, values[::2], values[1::2], strict=True):
            if raw is not None:
                self._known[run_id] = _KnownRun(raw)
            if holder is not None:
                holders[run_id] = _text(holder)
        return holders

    def queue_progress(self, queue: str) -> float:
        """The newest send time of a message a worker has started on ``queue`` (0 if none)."""
        mark = self._client.get(keys.queue_progress(self.prefix, queue))
        return float(mark) if mark is not None else 0.0

    def known_task_run(self, run_id: uuid.UUID) -> TaskRun | None:
        """The task run as this process last primed or wrote it (no read); None if unknown."""
        known = self._known.get(run_id)
        if known is None:
            return None
        kind, run = known.decoded()
        return run if kind == "task" else None  # type: ignore[return-value]

    def runs_with_leases(
        self, run_ids: list[uuid.UUID]
    ) -> list[tuple[FlowRun | TaskRun | None, str | None]]:
        """Each run (None if gone) with its lease holder (None if none), in one round trip."""
        if not run_ids:
            return []
        run_keys = [keys.run(self.prefix, run_id) for run_id in run_ids]
        values = self._client.mget(run_keys + [keys.lease(self.prefix, r) for r in run_ids])
        raws, holders = values[: len(run_ids)], values[len(run_ids) :]
        return [
            (_decode_run(raw)[1] if raw is not None else None, _text(h) if h else None)
            for raw, h in zip(raws, holders, strict=True)
        ]

    @_reachable
    def lapsed_flow_runs(self) -> list[FlowRun]:
        """Started, unfinished flow runs whose process no longer renews their lease."""
        active = keys.active_flow_runs(self.prefix)
        ids = [uuid.UUID(_text(member)) for member in self._client.smembers(active)]
        lapsed, gone = [], []
        for run_id, (run, holder) in zip(ids, self.runs_with_leases(ids), strict=True):
            if run is None:
                gone.append(str(run_id))  # expired or deleted: nothing to sweep
            elif holder is None and run.state is not None and not run.state.is_final():
                lapsed.append(run)
        if gone:
            self._client.srem(active, *gone)
        return lapsed  # type: ignore[return-value]

    @_reachable
    def propose_if_unleased(self, run_id: uuid.UUID, state: State[Any]) -> bool:
        """Propose ``state`` only if no process holds the run's lease; whether it was accepted."""
        self._known.pop(run_id, None)
        outcome = self._propose(run_id, state, force=False, only_if_lapsed=True)
        # The result may hold the stored state rather than this object: compare ids.
        accepted = outcome.status == SetStateStatus.ACCEPT and outcome.state is not None
        return accepted and outcome.state.id == state.id  # type: ignore[union-attr]

    def _set_flow_lifetime(self, flow_run_id: uuid.UUID, final: bool) -> None:
        pipe = self._client.pipeline(transaction=False)
        for owned_key in self._flow_owned_keys(self._client, flow_run_id):
            if final:
                pipe.expire(owned_key, self.retention_seconds)
            else:
                pipe.persist(owned_key)
        pipe.execute()

    def _flow_owned_keys(self, pipe: Any, flow_run_id: uuid.UUID) -> list[str]:
        """Everything a flow run owns beyond its own record: logs, inputs, task runs."""
        p = self.prefix
        task_index = keys.flow_task_runs(p, flow_run_id)
        input_index = keys.run_input_keys(p, flow_run_id)
        owned = [task_index, input_index, keys.logs(p, flow_run_id), keys.events(p, flow_run_id)]
        for name in pipe.smembers(input_index):
            owned.append(keys.run_input(p, flow_run_id, _text(name)))
        for raw_id in pipe.lrange(task_index, 0, -1):
            task_run_id = uuid.UUID(_text(raw_id))
            owned += [keys.run(p, task_run_id), keys.history(p, task_run_id)]
        return owned

    @_reachable
    def read_state_history(self, run_id: uuid.UUID) -> list[State[Any]]:
        """Every accepted state of a run, oldest first; raises ObjectNotFound."""
        pipe = self._client.pipeline(transaction=False)
        pipe.exists(keys.run(self.prefix, run_id))
        pipe.lrange(keys.history(self.prefix, run_id), 0, -1)
        exists, states = pipe.execute()
        if not exists:
            raise ObjectNotFound(f"No run with id {run_id}.")
        return [State.model_validate_json(raw) for raw in states]

    # --- logs --------------------------------------------------------------------

    @_reachable
    def write_logs(self, logs: Iterable[RunLog]) -> None:
        """Append run log lines to their flow runs' lists in one round trip."""
        lines: dict[str, list[str]] = defaultdict(list)
        for log in logs:
            lines[keys.logs(self.prefix, log.flow_run_id)].append(log.model_dump_json())
        if not lines:
            return
        pipe = self._client.pipeline(transaction=False)
        for key, batch in lines.items():
            pipe.rpush(key, *batch)
        pipe.execute()

    @_reachable
    def read_logs(self, flow_run_id: uuid.UUID, offset: int = 0) -> list[RunLog]:
        """A flow run's log lines (its task runs' included) from ``offset`` on."""
        raws = self._client.lrange(keys.logs(self.prefix, flow_run_id), offset, -1)
        return [RunLog.model_validate_json(raw) for raw in raws]

    # --- flow run input ------------------------------------------------------------

    @_reachable
    def set_run_input(self, flow_run_id: uuid.UUID, key: str, value: str) -> None:
        """Store a JSON document ``value`` under ``key`` for a flow run."""
        pipe = self._client.pipeline(transaction=True)
        pipe.set(keys.run_input(self.prefix, flow_run_id, key), value)
        pipe.sadd(keys.run_input_keys(self.prefix, flow_run_id), key)
        pipe.execute()

    @_reachable
    def read_run_input(self, flow_run_id: uuid.UUID, key: str) -> str | None:
        """The JSON document under ``key``, or None."""
        raw = self._client.get(keys.run_input(self.prefix, flow_run_id, key))
        return None if raw is None else _text(raw)

    @_reachable
    def write_cache(self, key: str, state: State[Any], expires_at: datetime | None = None) -> None:
        """Cache a completed state (its value travels by reference) until ``expires_at``."""
        ttl_ms = None
        if expires_at is not None:
            ttl_ms = int((expires_at - now()).total_seconds() * 1000)
            if ttl_ms <= 0:
                return  # already expired: nothing to keep
        self._client.set(keys.cache(self.prefix, key), state.model_dump_json(), px=ttl_ms)

    @_reachable
    def read_cache(self, key: str) -> State[Any] | None:
        """The cached state, or None when absent or expired."""
        raw = self._client.get(keys.cache(self.prefix, key))
        return State.model_validate_json(raw) if raw is not None else None

    def close(self) -> None:
        """Release this store's connections (a client passed in is left open)."""
        if self._owns_client:
            self._client.close()
