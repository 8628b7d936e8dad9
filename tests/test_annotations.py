"""Argument annotations: ``freeze``, ``opaque`` and their home module (issue 8)."""

import pytest
from pydantic import BaseModel, TypeAdapter

import engine.annotations as old_path
import engine.utilities.annotations as home
from engine.utilities.annotations import freeze, opaque, quote, unmapped


class TestHome:
    @pytest.mark.parametrize(
        "name", ["BaseAnnotation", "allow_failure", "freeze", "opaque", "quote", "unmapped"]
    )
    def test_older_path_is_the_same_object(self, name):
        assert getattr(old_path, name) is getattr(home, name)


class TestFreeze:
    @pytest.mark.parametrize(
        "value", ["s", 1, 2.5, False, None, [1, "a"], {"x", "y"}, {"k": {"n": [None]}}]
    )
    def test_round_trip(self, value):
        assert freeze(value).unfreeze() == value

    @pytest.mark.parametrize(
        "value", [object(), lambda: 1, type("Local", (), {})], ids=["object", "lambda", "type"]
    )
    def test_value_must_be_json(self, value):
        with pytest.raises(ValueError, match="Value must be JSON serializable"):
            freeze(value)

    def test_pydantic_dumps_the_plain_value(self):
        assert TypeAdapter(freeze).dump_python(freeze({"a": 1})) == {"a": 1}
        assert TypeAdapter(freeze[int]).dump_python(freeze(3)) == 3

    def test_pydantic_field_freezes_and_dumps(self):
        class Params(BaseModel):
            region: freeze[str]

        params = Params(region="eu")
        assert isinstance(params.region, freeze)
        assert params.model_dump() == {"region": "eu"}

    def test_equality_by_kind_and_value(self):
        assert freeze(1) == freeze(1)
        assert freeze(1) != quote(1)


class TestOpaque:
    def test_wraps_and_rewraps(self):
        wrapped = opaque({"big": [1, 2]})
        assert wrapped.unwrap() == {"big": [1, 2]}
        assert isinstance(wrapped.rewrap(3), opaque)
        assert repr(wrapped) == "opaque({'big': [1, 2]})"


class TestUnmapped:
    def test_every_index_gives_the_value(self):
        thing = unmapped("same")
        assert [thing[i] for i in (0, 5, 99)] == ["same"] * 3
