"""Results: where finished runs put their values, references to them, and keyed records.

A state carries a ``ResultRef`` (storage URL + key); any process that can reach
the storage reads the value back. Values are serialized with cloudpickle so
that lambdas, local classes and exceptions survive the trip, unless a run asks
for another serializer (``result_serializer="json"``, see ``engine.serializers``).

A ``ResultStore`` keeps *records* under keys a caller chooses: a transaction's
committed value, a cache entry. A record is a ``ResultRecord`` (the value and
its metadata: key, expiration, serializer).

Unpickling runs code, and a storage (Redis, a directory, the run store that
carries inline refs) may be writable by others: every payload a storage keeps
is signed (see ``engine.signing``) and verified before it is read. Two
payload formats exist: signed cloudpickle bytes (``<hex HMAC>.<pickle>``, the
fast default) and a serialized ``ResultRecord``, a JSON document that carries
its signature inside (so a JSON result stays plain JSON in storage).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import json
import os
import socket
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlparse

import cloudpickle
from pydantic import BaseModel, Field, SerializeAsAny, field_validator

from engine.exceptions import ConfigurationError, MissingResult, SerializationError
from engine.serializers import (
    PickleSerializer,
    Serializer,
    is_default_serializer,
    resolve_serializer,
)
from engine.signing import current_signer
from engine.utilities.asyncutils import async_dispatch

R = TypeVar("R")

# Values whose pickle is at most this size are carried inside the reference.
INLINE_LIMIT_BYTES = 512
INLINE = "inline"


class ResultRef(BaseModel):
    """Where a value lives: the storage's URL and the key inside it."""

    storage: str
    key: str


def dumps(value: Any) -> bytes:
    """Serialize ``value``; a clear error names the type that cannot cross processes."""
    try:
        return cloudpickle.dumps(value)
    except Exception as exc:  # cloudpickle raises many kinds (TypeError, PicklingError...)
        raise SerializationError(
            f"Cannot serialize a value of type {type(value).__name__}: {exc}. "
            "Values passed between processes must be picklable.",
            value,
        ) from exc


def loads(payload: bytes) -> Any:
    """Deserialize a payload written by ``dumps`` (trusted bytes only: this runs code)."""
    return cloudpickle.loads(payload)


def loads_verified(signed: bytes, what: str) -> Any:
    """The value in a signed payload; raises SignatureVerificationError before unpickling.

    ``what`` names the payload in the error, e.g. ``"Result 3f2a... in redis://..."``.
    """
    return loads(current_signer().verify(signed, what))


# --- records ------------------------------------------------------------------------------


class ResultRecordMetadata(BaseModel):
    """What a record says about its value: where it is, until when, how it is serialized."""

    storage_key: str | None = None
    expiration: datetime.datetime | None = None
    serializer: SerializeAsAny[Serializer] = Field(default_factory=PickleSerializer)
    storage_block_id: uuid.UUID | None = None

    @field_validator("serializer", mode="before")
    @classmethod
    def _resolve(cls, value: Any) -> Any:
        return resolve_serializer(value)

    def is_expired(self) -> bool:
        """True once ``expiration`` has passed (a naive expiration is read as UTC)."""
        expiration = self.expiration
        if expiration is None:
            return False
        if expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=datetime.UTC)
        return expiration <= _utcnow()


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class ResultRecord(BaseModel, Generic[R]):
    """A value with its metadata, as a ``ResultStore`` keeps it under a key.

    ``serialize()`` gives a JSON document: the metadata, the value (as JSON
    for a JSON serializer, else base64 of the serializer's bytes) and an HMAC
    over both, which ``deserialize`` verifies before decoding the value.
    """

    metadata: ResultRecordMetadata
    result: Any

    def serialize(self) -> bytes:
        """The signed JSON document for this record."""
        body = {
            "metadata": self.metadata.model_dump(mode="json"),
            "result": _encode_value(self.result, self.metadata.serializer),
        }
        signature = _sign_document(body)
        return json.dumps({**body, "signature": signature}).encode()

    @classmethod
    def deserialize(cls, data: bytes | str, what: str = "A result record") -> ResultRecord[Any]:
        """The record in ``data``; raises SignatureVerificationError before decoding the value.

        ``data`` may also be a value stored in the default format (signed
        cloudpickle), which gives a record of that value.
        """
        if isinstance(data, bytes) and not is_record(data):
            return cls(metadata=ResultRecordMetadata(), result=loads_verified(data, what))
        try:
            document = json.loads(data)
            body = {"metadata": document["metadata"], "result": document["result"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise SerializationError(f"{what} is not a result record: {exc}", data) from exc
        _verify_document(body, str(document.get("signature", "")), what)
        metadata = ResultRecordMetadata.model_validate(body["metadata"])
        return cls(metadata=metadata, result=_decode_value(body["result"], metadata.serializer))

    def serialize_metadata(self) -> bytes:
        """The metadata alone, as a signed JSON document (for a separate metadata storage)."""
        body = {"metadata": self.metadata.model_dump(mode="json"), "result": None}
        return json.dumps({**body, "signature": _sign_document(body)}).encode()

    @classmethod
    def deserialize_metadata(
        cls, data: bytes, what: str = "Result metadata"
    ) -> ResultRecordMetadata:
        """The metadata written by ``serialize_metadata``, verified."""
        document = json.loads(data)
        body = {"metadata": document.get("metadata"), "result": None}
        _verify_document(body, str(document.get("signature", "")), what)
        return ResultRecordMetadata.model_validate(body["metadata"])


def _encode_value(value: Any, serializer: Serializer) -> Any:
    try:
        blob = serializer.dumps(value)
    except Exception as exc:  # each serializer fails its own way
        raise SerializationError(
            f"Cannot serialize a value of type {type(value).__name__} with the "
            f"{serializer.type!r} serializer: {exc}",
            value,
        ) from exc
    if serializer.writes_json:
        return json.loads(blob)  # kept as JSON, readable in storage
    return base64.b64encode(blob).decode()


def _decode_value(encoded: Any, serializer: Serializer) -> Any:
    if serializer.writes_json:
        return serializer.loads(json.dumps(encoded).encode())
    return serializer.loads(base64.b64decode(encoded))


def _canonical(body: dict[str, Any]) -> bytes:
    # Signed and verified over one canonical text, so any JSON library may write the file.
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _sign_document(body: dict[str, Any]) -> str:
    signed = current_signer().sign(_canonical(body))
    return signed.split(b".", 1)[0].decode()


def _verify_document(body: dict[str, Any], signature: str, what: str) -> None:
    current_signer().verify(signature.encode() + b"." + _canonical(body), what)


def is_record(payload: bytes) -> bool:
    """True if ``payload`` is a serialized ``ResultRecord`` (signed pickles start with hex)."""
    return payload[:1] == b"{"


def decode_payload(payload: bytes, what: str) -> Any:
    """The value in a stored payload of either format, verified first."""
    if is_record(payload):
        return ResultRecord.deserialize(payload, what).result
    return loads_verified(payload, what)


# --- storages -----------------------------------------------------------------------------


class ResultStorage(ABC):
    """A place that keeps serialized values under keys.

    Storages also answer the seed API's file-system calls: ``read_path`` /
    ``write_path`` (a path is a key), awaitable from async code.
    """

    url: str

    @abstractmethod
    def write_bytes(self, key: str, payload: bytes) -> None:
        """Store ``payload`` (already signed, see ``write``) under ``key``."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The signed payload under ``key``; raises MissingResult if absent."""

    def exists(self, key: str) -> bool:
        """True if something is stored under ``key``."""
        try:
            self.read_bytes(key)
        except MissingResult:
            return False
        return True

    def write(
        self, value: Any, key: str | None = None, serializer: Serializer | None = None
    ) -> ResultRef:
        """Persist ``value`` and return the reference to it.

        Small values travel inside the reference itself: no write now, and no
        read for whoever needs the value later (a chain hop saves two round
        trips). A value with a serializer other than the default is always
        written, as a result record (see ``ResultRecord``).
        """
        if not is_default_serializer(serializer):
            assert serializer is not None
            key = key or uuid.uuid4().hex
            metadata = ResultRecordMetadata(storage_key=key, serializer=serializer)
            self.write_bytes(key, ResultRecord(metadata=metadata, result=value).serialize())
            return ResultRef(storage=self.url, key=key)
        payload = dumps(value)
        signed = current_signer().sign(payload)
        if key is None and len(payload) <= INLINE_LIMIT_BYTES:
            return ResultRef(storage=INLINE, key=base64.b64encode(signed).decode())
        key = key or uuid.uuid4().hex
        self.write_bytes(key, signed)
        return ResultRef(storage=self.url, key=key)

    def read(self, ref: ResultRef) -> Any:
        """The value behind ``ref``, verified before it is decoded."""
        return decode_payload(self.read_bytes(ref.key), self.describe(ref.key))

    async def aread_path(self, path: str) -> bytes:
        """``read_path`` for coroutines."""
        return self.read_path(path, _sync=True)

    @async_dispatch(aread_path)
    def read_path(self, path: str) -> bytes:
        """The bytes stored under ``path``; ValueError if there are none."""
        try:
            return self.read_bytes(path)
        except MissingResult:
            raise ValueError(f"Path {path} does not exist.") from None

    async def awrite_path(self, path: str, content: bytes) -> str:
        """``write_path`` for coroutines."""
        return self.write_path(path, content, _sync=True)

    @async_dispatch(awrite_path)
    def write_path(self, path: str, content: bytes) -> str:
        """Store ``content`` under ``path`` as it is; returns the path."""
        self.write_bytes(path, content)
        return path

    def describe(self, key: str) -> str:
        """How errors name the result under ``key`` (the URL without its password)."""
        url = self.url
        if "@" in url:  # only then can there be a password: reads stay cheap
            from broker_config.settings import mask_url

            url = mask_url(url)
        return f"Result {key} in {url}"

    def read_many(self, refs: list[ResultRef]) -> list[Any]:
        """The values behind many refs (stores override this to use one round trip)."""
        return [self.read(ref) for ref in refs]


class MemoryResultStorage(ResultStorage):
    """Process-local storage for the embedded mode (values stay pickled, like elsewhere)."""

    url = "memory://"

    def __init__(self) -> None:
        self._items: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def write_bytes(self, key: str, payload: bytes) -> None:
        with self._lock:
            self._items[key] = payload

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._items[key]
        except KeyError:
            raise MissingResult(f"No result under key {key!r} in memory storage.") from None


class FileSystemResultStorage(ResultStorage):
    """Values as files under a directory shared by every process that reads them."""

    def __init__(self, basepath: str | Path) -> None:
        self.basepath = Path(basepath).expanduser().resolve()
        self.url = f"file://{self.basepath}"

    def write_bytes(self, key: str, payload: bytes) -> None:
        target = self.basepath / key
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
        partial.write_bytes(payload)
        partial.replace(target)  # atomic: readers never see half a file

    def read_bytes(self, key: str) -> bytes:
        try:
            return (self.basepath / key).read_bytes()
        except FileNotFoundError:
            raise MissingResult(f"No result file {key!r} under {self.basepath}.") from None


class RedisResultStorage(ResultStorage):
    """Values in Redis strings under a key prefix, with an optional TTL."""

    def __init__(self, url: str, prefix: str = "celerity", ttl_seconds: int | None = None) -> None:
        import redis

        self.url = url
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds
        self.client = redis.Redis.from_url(url)

    def _key(self, key: str) -> str:
        return f"{self.prefix}:result:{key}"

    def write_bytes(self, key: str, payload: bytes) -> None:
        self.client.set(self._key(key), payload, ex=self.ttl_seconds)

    def read_many(self, refs: list[ResultRef]) -> list[Any]:
        if any(ref.storage == INLINE for ref in refs):
            return [read_result(ref) for ref in refs]
        payloads = self.client.mget([self._key(ref.key) for ref in refs]) if refs else []
        missing = [ref.key for ref, payload in zip(refs, payloads, strict=True) if payload is None]
        if missing:
            raise MissingResult(
                f"No result for {len(missing)} upstream run(s) (expired?): {missing[:3]}"
            )
        return [
            decode_payload(payload, self.describe(ref.key))  # type: ignore[arg-type]
            for ref, payload in zip(refs, payloads, strict=True)
        ]

    def read_bytes(self, key: str) -> bytes:
        payload = self.client.get(self._key(key))
        if payload is None:
            raise MissingResult(f"No result {key!r} in Redis (expired or never written).")
        return payload  # type: ignore[return-value]


_registry: dict[str, ResultStorage] = {}
_registry_lock = threading.Lock()
_default_memory = MemoryResultStorage()
_registry[_default_memory.url] = _default_memory


def register_storage(storage: ResultStorage) -> ResultStorage:
    """Make ``storage`` the one used to read refs that name its URL in this process."""
    with _registry_lock:
        _registry[storage.url] = storage
    return storage


def storage_for_url(url: str) -> ResultStorage:
    """The storage behind a ref's URL, created on first use."""
    with _registry_lock:
        found = _registry.get(url)
        if found is None:
            found = _registry[url] = _create_storage(url)
        return found


def _create_storage(url: str) -> ResultStorage:
    scheme = urlparse(url).scheme
    if scheme == "file":
        return FileSystemResultStorage(urlparse(url).path)
    if scheme in ("redis", "rediss", "unix"):
        base, _, prefix = url.partition("#")
        storage = RedisResultStorage(base, prefix=prefix or "celerity")
        storage.url = url
        return storage
    if scheme == "memory":
        raise MissingResult(
            "This result lives in another process's memory; "
            "configure shared result storage (Redis or a filesystem path)."
        )
    raise MissingResult(f"Unknown result storage {url!r}.")


def shared_result_storage(settings: Any) -> ResultStorage:
    """The storage every process of a fleet shares, as ``settings`` ask (Redis by default).

    One per process and settings: each flow run on a fleet (and each flow run's
    parameters kept for retries) uses it, so it must not open a connection pool
    per call. Values expire after ``result_ttl_seconds``.
    """
    if settings.result_storage == "file":
        return resolve_storage(settings.result_path)  # type: ignore[return-value]
    url = str(settings.effective_store_url or settings.broker_url)
    shared_url = f"{url}#{settings.key_prefix}"
    with _registry_lock:
        found = _registry.get(shared_url)
    if isinstance(found, RedisResultStorage) and found.ttl_seconds == settings.result_ttl_seconds:
        return found
    storage = RedisResultStorage(
        url, prefix=settings.key_prefix, ttl_seconds=settings.result_ttl_seconds
    )
    storage.url = shared_url
    return register_storage(storage)


def resolve_storage(option: Any) -> ResultStorage | None:
    """A run's ``result_storage`` option as a storage: a storage, a URL or a directory path."""
    if option is None or isinstance(option, ResultStorage):
        return option
    text = str(option)
    if "://" not in text:  # a directory: one shared storage per path, like a URL
        text = f"file://{Path(text).expanduser().resolve()}"
    return storage_for_url(text)


def read_result(ref: ResultRef) -> Any:
    """The value behind ``ref`` from whichever storage it names."""
    if ref.storage == INLINE:
        return loads_verified(base64.b64decode(ref.key), "An inline result")
    return storage_for_url(ref.storage).read(ref)


# --- the default storage ---------------------------------------------------------------------

# Default storages chosen in this process, by run store URL (clear it to choose again).
_default_storages: dict[str, ResultStorage] = {}


def get_default_result_storage() -> ResultStorage:
    """The storage results go to when no run names one.

    On a fleet, the storage every process shares (Redis by default); embedded,
    this process's memory. A storage saved by name and named by the
    ``default_result_storage_name`` setting comes first.
    """
    from engine.config import current_settings

    settings = current_settings()
    if settings.default_result_storage_name:
        from engine.filesystems import load_saved_storage

        return load_saved_storage(settings.default_result_storage_name)
    choice = str(settings.effective_store_url or "")
    found = _default_storages.get(choice)
    if found is None:
        found = _default_storages[choice] = (
            shared_result_storage(settings) if choice else _default_memory
        )
    return found


async def aget_default_result_storage() -> ResultStorage:
    """``get_default_result_storage`` for coroutines."""
    return get_default_result_storage()


async def aget_or_create_default_task_scheduling_storage() -> ResultStorage:
    """``get_or_create_default_task_scheduling_storage`` for coroutines."""
    return get_default_result_storage()


@async_dispatch(aget_or_create_default_task_scheduling_storage)
def get_or_create_default_task_scheduling_storage() -> ResultStorage:
    """Where background task runs keep their parameters: the default storage here."""
    return get_default_result_storage()


# --- keyed records -------------------------------------------------------------------------


def DEFAULT_STORAGE_KEY_FN() -> str:  # noqa: N802 - the seed API's name
    """A fresh random storage key."""
    return uuid.uuid4().hex


class _RunStoreRecords:
    """Records kept as cache entries of the process's run store (one key space with task caching).

    The run store is what every process of a fleet shares, so a record
    committed by one worker is seen by all; its value goes to result storage
    and the entry carries the reference.
    """

    def exists(self, key: str) -> bool:
        from engine.store import get_store

        return get_store().read_cache(key) is not None

    def read(self, key: str, serializer: Serializer) -> ResultRecord[Any]:
        from engine.store import get_store

        state = get_store().read_cache(key)
        if state is None:
            raise MissingResult(f"No result record under key {key!r}.")
        metadata = ResultRecordMetadata(
            storage_key=key,
            expiration=state.state_details.cache_expiration,
            serializer=serializer,
        )
        return ResultRecord(metadata=metadata, result=state.data)

    def write(self, record: ResultRecord[Any]) -> None:
        from engine.states import Completed

        key = str(record.metadata.storage_key)
        state = Completed(data=record.result)
        state.result_ref = _value_storage().write(
            record.result, serializer=record.metadata.serializer
        )
        state.state_details.cache_expiration = record.metadata.expiration
        self.write_state(key, state, record.metadata.serializer)

    def write_state(self, key: str, state: Any, serializer: Serializer) -> None:
        from engine.store import get_store

        get_store().write_cache(key, state, state.state_details.cache_expiration)

    def read_state(self, key: str) -> Any:
        from engine.store import get_store

        return get_store().read_cache(key)


def _value_storage() -> ResultStorage:
    """Where a record's value goes: the active run's storage, else the default one."""
    from engine.context import FlowRunContext, TaskRunContext

    context = TaskRunContext.get() or FlowRunContext.get()
    return getattr(context, "result_storage", None) or get_default_result_storage()


class _StorageRecords:
    """Records as serialized ``ResultRecord`` files under their key in a storage.

    With a separate ``metadata_storage`` the metadata goes there under the key
    and the whole record under the same key in the result storage.
    """

    def __init__(self, storage: ResultStorage, metadata_storage: ResultStorage | None) -> None:
        self.storage = storage
        self.metadata_storage = metadata_storage

    def exists(self, key: str) -> bool:
        try:
            if self.metadata_storage is not None:
                payload = self.metadata_storage.read_bytes(key)
                return not ResultRecord.deserialize_metadata(payload).is_expired()
            return not self._load(key).metadata.is_expired()
        except MissingResult:
            return False

    def read(self, key: str, serializer: Serializer) -> ResultRecord[Any]:
        record = self._load(key)
        if record.metadata.is_expired():
            raise MissingResult(f"The result record under key {key!r} has expired.")
        return record

    def _load(self, key: str) -> ResultRecord[Any]:
        payload = self.storage.read_bytes(key)
        return ResultRecord.deserialize(payload, self.storage.describe(key))

    def write(self, record: ResultRecord[Any]) -> None:
        key = str(record.metadata.storage_key)
        self.storage.write_bytes(key, record.serialize())
        if self.metadata_storage is not None:
            self.metadata_storage.write_bytes(key, record.serialize_metadata())

    def write_state(self, key: str, state: Any, serializer: Serializer) -> None:
        metadata = ResultRecordMetadata(
            storage_key=key, expiration=state.state_details.cache_expiration, serializer=serializer
        )
        self.write(ResultRecord(metadata=metadata, result=state.data))

    def read_state(self, key: str) -> Any:
        from engine.states import Completed

        try:
            record = self.read(key, PickleSerializer())
        except MissingResult:
            return None
        state = Completed(data=record.result)
        state.state_details.cache_key = key
        state.state_details.cache_expiration = record.metadata.expiration
        return state


@dataclasses.dataclass
class ResultStore:
    """Keeps result records under keys: transaction records and cache entries.

    - ``result_storage``: where records go (a storage, URL or directory). None:
      the run store's cache entries, shared by the whole fleet, with values in
      the active run's storage.
    - ``metadata_storage``: a separate place for records' metadata (optional).
    - ``lock_manager``: makes ``IsolationLevel.SERIALIZABLE`` possible (see
      ``engine.locking``); without one only ``READ_COMMITTED`` is supported.
    - ``serializer``: how values are written (``"pickle"``, ``"json"``...).
    - ``storage_key_fn``: the key of a record written without one.

    Example::

        store = ResultStore(result_storage="/shared/records", lock_manager=MemoryLockManager())
        store.write({"rows": 10}, key="nightly")
        store.read("nightly").result  # {"rows": 10}
    """

    result_storage: Any = None
    metadata_storage: Any = None
    lock_manager: Any = None
    cache_result_in_memory: bool = True
    serializer: Any = dataclasses.field(default_factory=PickleSerializer)
    storage_key_fn: Callable[[], str] = DEFAULT_STORAGE_KEY_FN

    def __post_init__(self) -> None:
        self.result_storage = resolve_storage(self.result_storage)
        self.metadata_storage = resolve_storage(self.metadata_storage)
        self.serializer = resolve_serializer(self.serializer)

    @property
    def result_storage_block_id(self) -> uuid.UUID | None:
        """The id the result storage was saved under (see ``LocalFileSystem.save``), if any."""
        return getattr(self.result_storage, "_block_document_id", None)

    def _records(self) -> _RunStoreRecords | _StorageRecords:
        if self.result_storage is None and self.metadata_storage is None:
            return _RunStoreRecords()
        storage = self.result_storage or get_default_result_storage()
        return _StorageRecords(storage, self.metadata_storage)

    def model_copy(self, update: dict[str, Any] | None = None) -> ResultStore:
        """A copy with the fields in ``update`` changed."""
        return dataclasses.replace(self, **(update or {}))

    # --- records ------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        """True if an unexpired record exists under ``key``."""
        return self._records().exists(key)

    async def aexists(self, key: str) -> bool:
        """``exists`` for coroutines."""
        return self.exists(key)

    def read(self, key: str, holder: str | None = None) -> ResultRecord[Any]:
        """The record under ``key``, once no other holder locks it; MissingResult if none."""
        if self._locked_by_other(key, holder):
            self.wait_for_lock(key)
        return self._records().read(key, self.serializer)

    async def aread(self, key: str, holder: str | None = None) -> ResultRecord[Any]:
        """``read`` for coroutines: waiting for a lock lets other tasks run."""
        if self._locked_by_other(key, holder):
            await self.await_for_lock(key)
        return self._records().read(key, self.serializer)

    def read_state(self, key: str, holder: str | None = None) -> Any:
        """The completed state recorded under ``key`` (a cache hit), or None.

        A record written from a run's final state comes back as that state; a
        record of a plain value as a Completed state holding it.
        """
        if self._locked_by_other(key, holder):
            self.wait_for_lock(key)
        return self._records().read_state(key)

    def create_result_record(
        self, obj: Any, key: str | None = None, expiration: datetime.datetime | None = None
    ) -> ResultRecord[Any]:
        """A record of ``obj`` under ``key`` (a fresh key if None), not yet written."""
        metadata = ResultRecordMetadata(
            storage_key=key or self.storage_key_fn(),
            expiration=expiration,
            serializer=self.serializer,
            storage_block_id=self.result_storage_block_id,
        )
        return ResultRecord(metadata=metadata, result=obj)

    def write(
        self,
        obj: Any,
        key: str | None = None,
        expiration: datetime.datetime | None = None,
        holder: str | None = None,
    ) -> None:
        """Write ``obj`` as the record under ``key``.

        A run's final state (what a task run stages) is recorded as it is:
        its value, its cache expiration.
        """
        from engine.states import State

        if isinstance(obj, State) and key is not None:
            self._check_lock(key, holder)
            self._records().write_state(key, obj, self.serializer)
            return
        self.persist_result_record(self.create_result_record(obj, key, expiration), holder)

    async def awrite(
        self,
        obj: Any,
        key: str | None = None,
        expiration: datetime.datetime | None = None,
        holder: str | None = None,
    ) -> None:
        """``write`` for coroutines."""
        self.write(obj, key=key, expiration=expiration, holder=holder)

    def persist_result_record(self, record: ResultRecord[Any], holder: str | None = None) -> None:
        """Write ``record`` under its storage key; RuntimeError if another holder locks it."""
        self._check_lock(str(record.metadata.storage_key), holder)
        self._records().write(record)

    async def apersist_result_record(
        self, record: ResultRecord[Any], holder: str | None = None
    ) -> None:
        """``persist_result_record`` for coroutines."""
        self.persist_result_record(record, holder)

    # --- locks ------------------------------------------------------------------------------

    @staticmethod
    def generate_default_holder() -> str:
        """Who is asking, as a lock holder: host, process, thread and asyncio task."""
        return default_holder()

    def supports_isolation_level(self, level: Any) -> bool:
        """True if transactions on this store can run at ``level``."""
        name = getattr(level, "value", level)
        if name == "READ_COMMITTED":
            return True
        if name == "SERIALIZABLE":
            return self.lock_manager is not None
        raise ValueError(f"Unsupported isolation level: {level}")

    def _manager(self) -> Any:
        if self.lock_manager is None:
            raise ConfigurationError(
                "This result store has no lock manager: create it with "
                "ResultStore(lock_manager=...) to lock records (see engine.locking)."
            )
        return self.lock_manager

    def acquire_lock(
        self, key: str, holder: str | None = None, timeout: float | None = None
    ) -> bool:
        """Lock the record under ``key`` for ``holder``; False if not within ``timeout`` seconds."""
        holder = holder or default_holder()
        return bool(self._manager().acquire_lock(key, holder=holder, acquire_timeout=timeout))

    async def aacquire_lock(
        self, key: str, holder: str | None = None, timeout: float | None = None
    ) -> bool:
        """``acquire_lock`` for coroutines."""
        holder = holder or default_holder()
        return bool(
            await self._manager().aacquire_lock(key, holder=holder, acquire_timeout=timeout)
        )

    def release_lock(self, key: str, holder: str | None = None) -> None:
        """Release ``holder``'s lock on ``key``; ValueError if it does not hold it."""
        self._manager().release_lock(key, holder or default_holder())

    def is_locked(self, key: str) -> bool:
        """True if someone holds the lock on ``key``."""
        return bool(self._manager().is_locked(key))

    def is_lock_holder(self, key: str, holder: str | None = None) -> bool:
        """True if ``holder`` (default: the caller) holds the lock on ``key``."""
        return bool(self._manager().is_lock_holder(key, holder or default_holder()))

    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        """Wait until ``key`` is unlocked; False if still locked after ``timeout`` seconds."""
        return bool(self._manager().wait_for_lock(key, timeout))

    async def await_for_lock(self, key: str, timeout: float | None = None) -> bool:
        """``wait_for_lock`` for coroutines."""
        return bool(await self._manager().await_for_lock(key, timeout))

    def _locked_by_other(self, key: str, holder: str | None) -> bool:
        if self.lock_manager is None:
            return False
        return self.is_locked(key) and not self.is_lock_holder(key, holder)

    def _check_lock(self, key: str, holder: str | None) -> None:
        if self._locked_by_other(key, holder):
            raise RuntimeError(
                f"Cannot write to result record with key {key} because it is locked by "
                "another holder."
            )

    # --- options of a flow or task ---------------------------------------------------------

    async def aupdate_for_flow(self, flow: Any) -> ResultStore:
        """``update_for_flow`` for coroutines."""
        return self.update_for_flow(flow, _sync=True)

    @async_dispatch(aupdate_for_flow)
    def update_for_flow(self, flow: Any) -> ResultStore:
        """A copy that follows ``flow``'s ``result_storage`` and ``result_serializer``."""
        return self.model_copy(update=_run_options(flow))

    async def aupdate_for_task(self, task: Any) -> ResultStore:
        """``update_for_task`` for coroutines."""
        return self.update_for_task(task, _sync=True)

    @async_dispatch(aupdate_for_task)
    def update_for_task(self, task: Any) -> ResultStore:
        """A copy that follows ``task``'s storage, serializer and cache policy options."""
        return self.model_copy(update=_task_options(task))


def result_store_for_task(task: Any, parent: ResultStore | None = None) -> ResultStore:
    """The store a task run's records (its cache entry) go to.

    The enclosing transaction's store (``parent``) or the run's, with the
    task's ``result_storage`` / ``result_serializer`` and its cache policy's
    ``key_storage`` / ``lock_manager`` applied; the lock manager comes from
    ``parent`` when the policy names none, so a task inside a SERIALIZABLE
    block can lock its own key.
    """
    if parent is None:
        # Not get_result_store(): the process's lock manager is for transaction()
        # blocks; a task's own policy must name one to ask for SERIALIZABLE.
        parent = _context_result_store() or _PLAIN_STORE
    update = _task_options(task)
    # Called for every task run: the common task without options shares its parent.
    return parent.model_copy(update=update) if update else parent


def _run_options(run_owner: Any) -> dict[str, Any]:
    update: dict[str, Any] = {}
    if getattr(run_owner, "result_storage", None) is not None:
        update["result_storage"] = run_owner.result_storage
    if getattr(run_owner, "result_serializer", None) is not None:
        update["serializer"] = run_owner.result_serializer
    return update


def _task_options(task: Any) -> dict[str, Any]:
    update = _run_options(task)
    policy = getattr(task, "cache_policy", None)
    key_storage = getattr(policy, "key_storage", None)
    lock_manager = getattr(policy, "lock_manager", None)
    if key_storage is not None:
        update["metadata_storage"] = key_storage
    if lock_manager is not None:
        update["lock_manager"] = lock_manager
    return update


# Records in the run store, no lock manager: what a task run without options starts from.
_PLAIN_STORE = ResultStore()


def default_holder() -> str:
    """This caller as a lock holder: ``host:pid:thread``, plus the asyncio task if any.

    Tasks of one event loop share a thread, so the task is part of the name.
    """
    holder = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop
        task = None
    return f"{holder}:{id(task)}" if task is not None else holder


def get_result_store() -> ResultStore:
    """The result store of the active run, else one for this process.

    Its records live in the run store (shared by a fleet) unless the run's
    store says otherwise, and it always has a lock manager (this process's
    default unless the run's store names one), so ``SERIALIZABLE``
    transactions work without configuration: in memory when embedded, in
    Redis on a fleet.
    """
    found = _context_result_store()
    if found is None:
        return _PLAIN_STORE.model_copy(update={"lock_manager": default_lock_manager()})
    if found.lock_manager is None:
        return found.model_copy(update={"lock_manager": default_lock_manager()})
    return found


def _context_result_store() -> ResultStore | None:
    from engine.context import FlowRunContext, TaskRunContext

    context = TaskRunContext.get() or FlowRunContext.get()
    found = getattr(context, "result_store", None)
    return found if isinstance(found, ResultStore) else None


_redis_lock_managers: dict[tuple[str, str], Any] = {}


def default_lock_manager() -> Any:
    """The lock manager that excludes every process sharing this process's run store."""
    from engine.locking import MemoryLockManager, RedisLockManager
    from engine.store import get_store

    store = get_store()
    url = str(getattr(store, "url", "memory://"))
    if url.startswith("memory://"):
        return MemoryLockManager()
    prefix = str(getattr(store, "prefix", "celerity"))
    with _registry_lock:
        found = _redis_lock_managers.get((url, prefix))
        if found is None:
            found = _redis_lock_managers[(url, prefix)] = RedisLockManager(url=url, prefix=prefix)
        return found
