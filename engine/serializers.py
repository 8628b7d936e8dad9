"""Serializers: how a result becomes bytes in storage, named as in the seed API.

A task or flow chooses one with ``result_serializer``: a name (``"pickle"``,
``"json"``, ``"compressed/pickle"``, ``"compressed/json"``) or an instance.
``PickleSerializer`` (cloudpickle by default) keeps any Python value;
``JSONSerializer`` writes JSON that other tools can read, for values JSON can
hold plus pydantic models, dates, UUIDs and the like. Example::

    @task(result_serializer="json", result_storage="/shared/results")
    def summary() -> dict: ...

What travels between processes is signed whatever the serializer (see
``engine.results``): the serializer decides the format, not the trust.
"""

from __future__ import annotations

import base64
import builtins
import datetime
import decimal
import importlib
import importlib.util
import uuid
from pathlib import PurePath
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator


class Serializer(BaseModel):
    """Turns values into bytes and back; ``type`` names the kind, for ``resolve_serializer``."""

    model_config = ConfigDict(extra="forbid")

    type: str

    # builtins.type: inside the class body "type" is the field above.
    _by_type: ClassVar[dict[str, builtins.type[Serializer]]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        default = cls.model_fields["type"].default
        if isinstance(default, str):
            Serializer._by_type[default] = cls

    def dumps(self, obj: Any) -> bytes:
        """``obj`` as bytes."""
        raise NotImplementedError

    def loads(self, blob: bytes) -> Any:
        """The value ``blob`` holds (only for bytes this serializer wrote)."""
        raise NotImplementedError

    @property
    def writes_json(self) -> bool:
        """True if ``dumps`` gives JSON text (kept readable in storage)."""
        return False


def _import_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ValueError(f"Module {name!r} could not be imported: {exc}") from exc


def _findable(name: str) -> str:
    """``name`` if a module of that name is installed; ValueError if not.

    Found without importing it: a serializer description may come with a
    record, and nothing a record names runs before its signature is verified.
    """
    try:
        found = importlib.util.find_spec(name.partition(".")[0])
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise ValueError(f"Module {name!r} could not be imported: no such module.")
    return name


def _library(name: str, *functions: str) -> Any:
    module = _import_module(name)
    missing = [fn for fn in functions if not callable(getattr(module, fn, None))]
    if missing:
        raise ValueError(f"Library {name!r} has no {', '.join(missing)}.")
    return module


def _import_object(path: str) -> Any:
    """The object at ``module.attribute[.nested...]`` (a class nested in a class too)."""
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for attribute in parts[split:]:
                found = getattr(found, attribute)
        except AttributeError:
            break
        return found
    raise ValueError(f"{path!r} could not be imported.")


class PickleSerializer(Serializer):
    """Any Python value, with ``picklelib`` (a module with ``dumps``/``loads``; cloudpickle)."""

    type: str = Field(default="pickle", frozen=True)
    picklelib: str = "cloudpickle"
    picklelib_version: str | None = None

    @field_validator("picklelib")
    @classmethod
    def _installed(cls, value: str) -> str:
        return _findable(value)

    def dumps(self, obj: Any) -> bytes:
        return bytes(_library(self.picklelib, "dumps", "loads").dumps(obj))

    def loads(self, blob: bytes) -> Any:
        return _library(self.picklelib, "dumps", "loads").loads(blob)


# --- JSON --------------------------------------------------------------------------------

_CLASS = "__class__"
_DATA = "data"
_EXCEPTION = "__exc_type__"
_TEXT_TYPES: dict[type, Any] = {
    datetime.datetime: datetime.datetime.fromisoformat,
    datetime.date: datetime.date.fromisoformat,
    datetime.time: datetime.time.fromisoformat,
    uuid.UUID: uuid.UUID,
    decimal.Decimal: decimal.Decimal,
}


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def json_object_encoder(obj: Any) -> Any:
    """What ``JSONSerializer`` writes for a value JSON has no form for (its ``default``)."""
    if isinstance(obj, BaseModel):
        return {_CLASS: _qualified(type(obj)), _DATA: obj.model_dump(mode="json")}
    if isinstance(obj, BaseException):
        return {_EXCEPTION: _qualified(type(obj)), "message": str(obj)}
    if type(obj) in _TEXT_TYPES:  # exact: a subclass would not come back as itself
        text = obj.isoformat() if isinstance(obj, datetime.datetime) else str(obj)
        return {_CLASS: _qualified(type(obj)), _DATA: text}
    if isinstance(obj, datetime.timedelta):
        return {_CLASS: "datetime.timedelta", _DATA: obj.total_seconds()}
    if isinstance(obj, PurePath):
        return {_CLASS: _qualified(type(obj)), _DATA: str(obj)}
    if isinstance(obj, bytes):
        return {_CLASS: "builtins.bytes", _DATA: base64.b64encode(obj).decode()}
    if isinstance(obj, (set, frozenset)):
        return {_CLASS: _qualified(type(obj)), _DATA: list(obj)}
    raise TypeError(f"Unable to serialize unknown type: {type(obj)}")


_BUILDERS: dict[str, Any] = {
    **{_qualified(kind): parse for kind, parse in _TEXT_TYPES.items()},
    "datetime.timedelta": lambda seconds: datetime.timedelta(seconds=seconds),
    "builtins.bytes": base64.b64decode,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
}


def json_object_decoder(document: dict[str, Any]) -> Any:
    """The value a document written by ``json_object_encoder`` stands for (an ``object_hook``)."""
    if _EXCEPTION in document and set(document) == {_EXCEPTION, "message"}:
        return _exception_from(document)
    if set(document) != {_CLASS, _DATA}:
        return document
    path, data = document[_CLASS], document[_DATA]
    if path in _BUILDERS:
        return _BUILDERS[path](data)
    cls = _import_object(path)
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return cls.model_validate(data)
    if isinstance(cls, type) and issubclass(cls, PurePath):
        return cls(data)
    raise ValueError(f"JSON result names {path!r}, which is not a type it can rebuild.")


def _exception_from(document: dict[str, Any]) -> BaseException:
    cls = _import_object(document[_EXCEPTION])
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        raise ValueError(f"Invalid exception type: {document[_EXCEPTION]!r}")
    try:
        return cls(document["message"])
    except Exception:  # an exception class with a constructor of its own
        return Exception(document["message"])


class JSONSerializer(Serializer):
    """JSON text, with ``jsonlib`` (a module with ``dumps``/``loads``; the standard ``json``).

    ``object_encoder`` / ``object_decoder`` are import paths of the functions
    used for values JSON has no form for (None: such values are refused).
    """

    type: str = Field(default="json", frozen=True)
    jsonlib: str = "json"
    object_encoder: str | None = "engine.serializers.json_object_encoder"
    object_decoder: str | None = "engine.serializers.json_object_decoder"
    dumps_kwargs: dict[str, Any] = Field(default_factory=dict)
    loads_kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("dumps_kwargs")
    @classmethod
    def _no_default(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "default" in value:
            raise ValueError("Use object_encoder instead of dumps_kwargs['default'].")
        return value

    @field_validator("loads_kwargs")
    @classmethod
    def _no_object_hook(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "object_hook" in value:
            raise ValueError("Use object_decoder instead of loads_kwargs['object_hook'].")
        return value

    @property
    def writes_json(self) -> bool:
        return True

    def dumps(self, obj: Any) -> bytes:
        kwargs = dict(self.dumps_kwargs)
        if self.object_encoder:
            kwargs["default"] = _import_object(self.object_encoder)
        text = _import_module(self.jsonlib).dumps(obj, **kwargs)
        return text.encode() if isinstance(text, str) else bytes(text)

    def loads(self, blob: bytes) -> Any:
        value = _import_module(self.jsonlib).loads(blob, **self.loads_kwargs)
        if not self.object_decoder:
            return value
        return _decoded(value, _import_object(self.object_decoder))


def _decoded(value: Any, decoder: Any) -> Any:
    """Apply ``decoder`` to every JSON object, innermost first (as an ``object_hook`` would)."""
    if isinstance(value, list):
        return [_decoded(item, decoder) for item in value]
    if isinstance(value, dict):
        return decoder({key: _decoded(item, decoder) for key, item in value.items()})
    return value


# --- compression ------------------------------------------------------------------------


class CompressedSerializer(Serializer):
    """Another serializer's bytes, compressed by ``compressionlib`` (lzma by default)."""

    type: str = Field(default="compressed", frozen=True)
    serializer: SerializeAsAny[Serializer] = Field(default_factory=lambda: PickleSerializer())
    compressionlib: str = "lzma"

    @field_validator("serializer", mode="before")
    @classmethod
    def _resolve_inner(cls, value: Any) -> Any:
        return resolve_serializer(value)

    @field_validator("compressionlib")
    @classmethod
    def _installed(cls, value: str) -> str:
        return _findable(value)

    def dumps(self, obj: Any) -> bytes:
        library = _library(self.compressionlib, "compress", "decompress")
        return bytes(library.compress(self.serializer.dumps(obj)))

    def loads(self, blob: bytes) -> Any:
        library = _library(self.compressionlib, "compress", "decompress")
        return self.serializer.loads(library.decompress(blob))


class CompressedPickleSerializer(CompressedSerializer):
    """``CompressedSerializer`` around ``PickleSerializer``."""

    type: str = Field(default="compressed/pickle", frozen=True)
    serializer: SerializeAsAny[Serializer] = Field(default_factory=lambda: PickleSerializer())


class CompressedJSONSerializer(CompressedSerializer):
    """``CompressedSerializer`` around ``JSONSerializer``."""

    type: str = Field(default="compressed/json", frozen=True)
    serializer: SerializeAsAny[Serializer] = Field(default_factory=lambda: JSONSerializer())


def resolve_serializer(value: Any) -> Serializer:
    """A serializer from a name (``"json"``), a description (``{"type": "json", ...}``) or one."""
    if isinstance(value, Serializer):
        return value
    if value is None:
        return PickleSerializer()
    spec = {"type": value} if isinstance(value, str) else dict(value)
    cls = Serializer._by_type.get(spec.get("type", ""))
    if cls is None:
        known = ", ".join(sorted(Serializer._by_type))
        raise ValueError(f"Unknown serializer {spec.get('type')!r}; known: {known}.")
    return cls.model_validate(spec)


def serializer_of(run_owner: Any) -> Serializer | None:
    """The serializer a task or flow asks for with ``result_serializer`` (None: the default).

    What the engines pass to ``ResultStorage.write`` for a run's result.
    """
    chosen = getattr(run_owner, "result_serializer", None)
    if chosen is None:
        return None
    serializer = resolve_serializer(chosen)
    return None if is_default_serializer(serializer) else serializer


def is_default_serializer(serializer: Serializer | None) -> bool:
    """True for the serializer results use unless told otherwise (cloudpickle)."""
    return serializer is None or serializer == _DEFAULT


_DEFAULT = PickleSerializer()


__all__ = [
    "CompressedJSONSerializer",
    "CompressedPickleSerializer",
    "CompressedSerializer",
    "JSONSerializer",
    "PickleSerializer",
    "Serializer",
    "is_default_serializer",
    "json_object_decoder",
    "json_object_encoder",
    "resolve_serializer",
    "serializer_of",
]
