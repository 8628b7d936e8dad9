"""Result storage: where finished runs put their values, and references to them.

A state carries a ``ResultRef`` (storage URL + key); any process that can reach
the storage reads the value back. Values are serialized with cloudpickle so
that lambdas, local classes and exceptions survive the trip.

Unpickling runs code, and a storage (Redis, a directory, the run store that
carries inline refs) may be writable by others: every payload a storage keeps
is signed (see ``engine.signing``) and verified before it is unpickled.
"""

from __future__ import annotations

import base64
import threading
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import cloudpickle
from pydantic import BaseModel

from engine.exceptions import MissingResult, SerializationError
from engine.signing import current_signer

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


class ResultStorage(ABC):
    """A place that keeps serialized values under keys."""

    url: str

    @abstractmethod
    def write_bytes(self, key: str, payload: bytes) -> None:
        """Store ``payload`` (already signed, see ``write``) under ``key``."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The signed payload under ``key``; raises MissingResult if absent."""

    def write(self, value: Any, key: str | None = None) -> ResultRef:
        """Persist ``value`` and return the reference to it.

        Small values travel inside the reference itself: no write now, and no
        read for whoever needs the value later (a chain hop saves two round
        trips).
        """
        payload = dumps(value)
        signed = current_signer().sign(payload)
        if key is None and len(payload) <= INLINE_LIMIT_BYTES:
            return ResultRef(storage=INLINE, key=base64.b64encode(signed).decode())
        key = key or uuid.uuid4().hex
        self.write_bytes(key, signed)
        return ResultRef(storage=self.url, key=key)

    def read(self, ref: ResultRef) -> Any:
        """The value behind ``ref``, verified before it is unpickled."""
        return loads_verified(self.read_bytes(ref.key), self.describe(ref.key))

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
        self.basepath.mkdir(parents=True, exist_ok=True)
        partial = self.basepath / f".{key}.partial"
        partial.write_bytes(payload)
        partial.replace(self.basepath / key)  # atomic: readers never see half a file

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
            loads_verified(payload, self.describe(ref.key))  # type: ignore[arg-type]
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


def default_storage() -> ResultStorage:
    """The storage used in this process unless a run says otherwise."""
    return _default_memory
