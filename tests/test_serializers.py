"""Serializers (engine.serializers) and the payloads result storage writes with them."""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import uuid
from pathlib import Path, PurePosixPath

import pytest
from pydantic import BaseModel

from engine.exceptions import SerializationError, SignatureVerificationError
from engine.results import FileSystemResultStorage, ResultRecord, ResultRecordMetadata
from engine.serializers import (
    CompressedJSONSerializer,
    CompressedPickleSerializer,
    CompressedSerializer,
    JSONSerializer,
    PickleSerializer,
    Serializer,
    resolve_serializer,
)


class Point(BaseModel):
    x: int
    y: int


class TestResolving:
    @pytest.mark.parametrize(
        "name, kind",
        [
            ("pickle", PickleSerializer),
            ("json", JSONSerializer),
            ("compressed/pickle", CompressedPickleSerializer),
            ("compressed/json", CompressedJSONSerializer),
        ],
    )
    def test_a_name_gives_that_serializer(self, name, kind):
        assert type(resolve_serializer(name)) is kind
        assert resolve_serializer(name).type == name

    def test_an_instance_is_kept_and_none_is_pickle(self):
        serializer = JSONSerializer(dumps_kwargs={"indent": 2})
        assert resolve_serializer(serializer) is serializer
        assert resolve_serializer(None) == PickleSerializer()

    def test_a_description_round_trips(self):
        original = CompressedSerializer(serializer="json", compressionlib="zlib")
        again = resolve_serializer(original.model_dump(mode="json"))
        assert again == original and isinstance(again.serializer, JSONSerializer)

    def test_unknown_names_and_libraries_are_refused(self):
        with pytest.raises(ValueError, match="Unknown serializer 'yaml'"):
            resolve_serializer("yaml")
        with pytest.raises(ValueError, match="could not be imported"):
            PickleSerializer(picklelib="no_such_pickle_module")
        with pytest.raises(ValueError, match="object_encoder"):
            JSONSerializer(dumps_kwargs={"default": str})


class TestPickle:
    def test_round_trips_what_json_cannot(self):
        serializer = PickleSerializer()
        value = {"fn": len, "set": {1, 2}, "local": Point(x=1, y=2)}
        assert serializer.loads(serializer.dumps(value)) == value

    def test_with_the_standard_pickle_library(self):
        serializer = PickleSerializer(picklelib="pickle")
        assert serializer.loads(serializer.dumps([1, "a"])) == [1, "a"]


class TestJSON:
    def test_writes_json_text(self):
        assert json.loads(JSONSerializer().dumps({"a": [1, 2.5, None]})) == {"a": [1, 2.5, None]}

    @pytest.mark.parametrize(
        "value",
        [
            datetime.datetime(2026, 12, 5, 8, 30, tzinfo=datetime.UTC),
            datetime.date(2026, 12, 5),
            datetime.time(8, 30),
            datetime.timedelta(seconds=90),
            uuid.UUID("12345678-1234-5678-1234-567812345678"),
            decimal.Decimal("1.10"),
            PurePosixPath("/data/out.csv"),
            b"\x00bytes",
            {1, 2, 3},
            Point(x=1, y=2),
        ],
        ids=lambda value: type(value).__name__,
    )
    def test_round_trips_common_types(self, value):
        serializer = JSONSerializer()
        again = serializer.loads(serializer.dumps({"value": value}))["value"]
        assert again == value and type(again) is type(value)

    def test_round_trips_an_exception_by_type_and_message(self):
        serializer = JSONSerializer()
        again = serializer.loads(serializer.dumps(ValueError("bad input")))
        assert type(again) is ValueError and str(again) == "bad input"

    def test_refuses_what_it_has_no_form_for(self):
        with pytest.raises(TypeError, match="Unable to serialize unknown type"):
            JSONSerializer().dumps(lambda: 1)

    def test_without_a_decoder_documents_stay_plain(self):
        serializer = JSONSerializer(object_decoder=None)
        assert serializer.loads(serializer.dumps(Point(x=1, y=2))) == {
            "__class__": f"{__name__}.Point",
            "data": {"x": 1, "y": 2},
        }


class TestCompressed:
    @pytest.mark.parametrize("inner", ["pickle", "json"])
    def test_round_trips_and_is_smaller_for_repetitive_values(self, inner):
        serializer = CompressedSerializer(serializer=inner)
        value = {"rows": [f"row {i % 7} of the same table" for i in range(500)]}
        blob = serializer.dumps(value)
        assert serializer.loads(blob) == value
        assert len(blob) < len(resolve_serializer(inner).dumps(value)) / 3


class TestStoredPayloads:
    def test_a_json_result_is_json_in_storage(self, tmp_path: Path):
        storage = FileSystemResultStorage(tmp_path)
        ref = storage.write(
            {"rows": 3, "when": datetime.date(2026, 1, 2)}, serializer=JSONSerializer()
        )
        document = json.loads((tmp_path / ref.key).read_bytes())
        assert document["result"] == {
            "rows": 3,
            "when": {"__class__": "datetime.date", "data": "2026-01-02"},
        }
        assert document["metadata"]["serializer"]["type"] == "json"
        assert storage.read(ref) == {"rows": 3, "when": datetime.date(2026, 1, 2)}

    def test_a_small_json_result_is_still_written_not_inlined(self, tmp_path: Path):
        ref = FileSystemResultStorage(tmp_path).write(1, serializer=JSONSerializer())
        assert ref.storage.startswith("file://") and (tmp_path / ref.key).exists()

    def test_the_default_payload_is_signed_cloudpickle(self, tmp_path: Path):
        storage = FileSystemResultStorage(tmp_path)
        ref = storage.write(list(range(1000)))
        payload = (tmp_path / ref.key).read_bytes()
        assert payload[64:65] == b"." and storage.read(ref) == list(range(1000))

    def test_a_changed_json_result_fails_verification(self, tmp_path: Path):
        storage = FileSystemResultStorage(tmp_path)
        ref = storage.write({"amount": 10}, serializer=JSONSerializer())
        path = tmp_path / ref.key
        document = json.loads(path.read_bytes())
        document["result"]["amount"] = 10_000
        path.write_text(json.dumps(document))
        with pytest.raises(SignatureVerificationError, match="failed signature verification"):
            storage.read(ref)

    def test_a_record_without_signature_is_refused_before_decoding(self, tmp_path: Path):
        blob = PickleSerializer().dumps(Point(x=1, y=2))
        forged = {
            "metadata": ResultRecordMetadata(storage_key="k").model_dump(mode="json"),
            "result": base64.b64encode(blob).decode(),
        }
        with pytest.raises(SignatureVerificationError, match="carries no Celerity signature"):
            ResultRecord.deserialize(json.dumps(forged).encode())

    def test_a_value_the_serializer_refuses_names_its_type(self, tmp_path: Path):
        with pytest.raises(SerializationError, match="function with the 'json' serializer"):
            FileSystemResultStorage(tmp_path).write(lambda: 1, serializer=JSONSerializer())


def test_subclasses_register_their_type_name():
    class Upper(Serializer):
        type: str = "upper-test"

        def dumps(self, obj):
            return str(obj).upper().encode()

        def loads(self, blob):
            return blob.decode()

    assert (
        resolve_serializer("upper-test").loads(resolve_serializer("upper-test").dumps("a")) == "A"
    )


def test_a_run_owner_names_its_serializer():
    from types import SimpleNamespace

    from engine.serializers import serializer_of

    assert serializer_of(SimpleNamespace(result_serializer=None)) is None
    assert serializer_of(SimpleNamespace(result_serializer="pickle")) is None
    assert serializer_of(SimpleNamespace(result_serializer="json")) == JSONSerializer()
    assert serializer_of(object()) is None


def test_a_described_library_is_not_imported_until_used(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "celerity_marker_lib.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    serializer = resolve_serializer({"type": "pickle", "picklelib": "celerity_marker_lib"})
    assert not marker.exists()  # a record's description runs nothing before verification
    with pytest.raises(ValueError, match="has no dumps, loads"):
        serializer.dumps(1)
    assert marker.exists()


def test_a_default_payload_reads_as_a_record_of_its_value(tmp_path: Path):
    storage = FileSystemResultStorage(tmp_path)
    storage.write(list(range(1000)), key="stored")
    record = ResultRecord.deserialize(storage.read_path("stored"))
    assert record.result == list(range(1000))


class Outer:
    class Inner(BaseModel):
        value: int


def test_a_model_nested_in_a_class_round_trips_as_json():
    serializer = JSONSerializer()
    again = serializer.loads(serializer.dumps(Outer.Inner(value=3)))
    assert again == Outer.Inner(value=3)
