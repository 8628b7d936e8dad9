"""engine.testing.utilities, engine.types and the flat-dict helpers that ported test code uses."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterator

import pytest
from process_store import fresh_process_store

from engine import flow
from engine.testing.utilities import exceptions_equal, get_most_recent_flow_run
from engine.types import DateTime
from engine.types._datetime import from_timestamp, now
from engine.types.entrypoint import EntrypointType
from engine.utilities.collections import dict_to_flatdict, flatdict_to_dict


@pytest.fixture(autouse=True)
def fresh_store() -> Iterator[None]:
    with fresh_process_store():
        yield


class TestExceptionsEqual:
    def test_same_type_and_args_are_equal(self):
        assert exceptions_equal(ValueError("x", 1), ValueError("x", 1))

    def test_other_args_or_type_are_not(self):
        assert not exceptions_equal(ValueError("x"), ValueError("y"))
        assert not exceptions_equal(ValueError("x"), TypeError("x"))


class TestMostRecentFlowRun:
    def test_finds_the_newest_run_of_a_flow(self):
        @flow(name="recent-one")
        def recent(x: int) -> int:
            return x

        @flow(name="recent-other")
        def other() -> None:
            return None

        recent(1)
        recent(2)
        other()
        found = asyncio.run(get_most_recent_flow_run(flow_name="recent-one"))
        assert found.parameters == {"x": 2}
        assert asyncio.run(get_most_recent_flow_run()).flow_name == "recent-other"

    def test_no_run_is_a_lookup_error(self):
        with pytest.raises(LookupError, match="'never-ran'"):
            asyncio.run(get_most_recent_flow_run(flow_name="never-ran"))


class TestTypes:
    def test_datetimes_are_aware_and_plain(self):
        assert DateTime is datetime.datetime
        assert now().tzinfo is datetime.UTC
        assert now("Europe/Paris").utcoffset() is not None
        assert from_timestamp(0) == datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

    def test_entrypoint_types(self):
        assert {t.value for t in EntrypointType} == {"file_path", "module_path"}


class TestFlatDicts:
    def test_round_trip(self):
        nested = {"a": {"b": 1, "c": {"d": 2}}, "e": {}, "f": 3}
        flat = dict_to_flatdict(nested)
        assert flat == {("a", "b"): 1, ("a", "c", "d"): 2, ("e",): {}, ("f",): 3}
        assert flatdict_to_dict(flat) == nested
