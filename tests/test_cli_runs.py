"""``celerity runs``: finding runs by id prefix or name, filters, JSON, and the details shown.

Runs are written straight into a real Redis run store (the session's
redis-server), then read by the CLI in this process: no fleet is needed to
check what the commands select and print (tests/distributed/test_cli_fleet_runs.py
runs them against a fleet).
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from celerity.cli import main
from celerity.loading import declared_flow_name
from celerity.run_filters import parse_duration
from engine.flows import generate_run_name
from engine.schemas import FlowRun, TaskRun
from engine.states import Completed, Failed, Paused, Running, State
from engine.store.redis import RedisRunStore

NOW = datetime.datetime.now(datetime.UTC)


@pytest.fixture
def store(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisRunStore]:
    """The CLI's settings point at the session's (flushed) Redis; this is its run store."""
    from process_store import fresh_process_store

    from broker_config.settings import reset_settings

    monkeypatch.setenv("CELERITY_BROKER_URL", redis_url)
    reset_settings()
    store = RedisRunStore(redis_url)
    with fresh_process_store():
        yield store
    store.close()


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def add_flow_run(
    store: RedisRunStore,
    state: State,
    *,
    run_id: str | None = None,
    name: str = "",
    flow_name: str = "nightly-prices",
    age: datetime.timedelta = datetime.timedelta(0),
) -> FlowRun:
    run = FlowRun(
        id=uuid.UUID(run_id) if run_id else uuid.uuid4(),
        name=name or generate_run_name(),
        flow_name=flow_name,
        state=state,
        created=NOW - age,
        start_time=NOW - age,
    )
    state.state_details.flow_run_id = run.id
    return store.create_flow_run(run)


def add_task_run(store: RedisRunStore, flow_run: FlowRun, name: str, state: State) -> TaskRun:
    run = TaskRun(name=name, flow_run_id=flow_run.id, task_key=f"flows.{name}", state=state,
                  start_time=NOW, end_time=NOW + datetime.timedelta(seconds=1.5), run_count=1)
    state.state_details.task_run_id = run.id
    return store.create_task_run(run)


class TestFindingRuns:
    def test_a_unique_prefix_finds_the_run(self, store: RedisRunStore) -> None:
        run = add_flow_run(store, Completed(), run_id="abcd1234-0000-4000-8000-000000000001")
        add_flow_run(store, Completed(), run_id="abff0000-0000-4000-8000-000000000002")

        code, output = invoke("runs", "show", "abcd")

        assert code == 0, output
        assert str(run.id) in output

    def test_an_ambiguous_prefix_lists_the_candidates(self, store: RedisRunStore) -> None:
        first = add_flow_run(store, Completed(), run_id="abcd1234-0000-4000-8000-000000000001")
        second = add_flow_run(store, Failed(), run_id="abcd9999-0000-4000-8000-000000000002")

        code, output = invoke("runs", "show", "abc")

        assert code == 1, output
        assert "ambiguous" in output
        assert str(first.id) in output and str(second.id) in output

    def test_a_name_finds_the_run(self, store: RedisRunStore) -> None:
        run = add_flow_run(store, Completed(), name="modern-nuthatch")
        add_flow_run(store, Completed(), name="other-name")

        code, output = invoke("runs", "show", "modern-nuthatch", "--json")

        assert code == 0, output
        assert json.loads(output)["id"] == str(run.id)

    def test_a_repeated_name_is_ambiguous(self, store: RedisRunStore) -> None:
        add_flow_run(store, Completed(), name="twin-name")
        add_flow_run(store, Completed(), name="twin-name")

        code, output = invoke("runs", "logs", "twin-name")

        assert code == 1 and "2 flow runs match" in output, output

    def test_nothing_matching_is_one_clear_line(self, store: RedisRunStore) -> None:
        code, output = invoke("runs", "show", "not-a-run")

        assert code == 1
        assert output.strip() == (
            "Error: no flow run has an id starting with, or the name, 'not-a-run'"
        )


class TestRunsLs:
    @pytest.fixture
    def runs(self, store: RedisRunStore) -> dict[str, FlowRun]:
        return {
            "old_completed": add_flow_run(store, Completed(), age=datetime.timedelta(days=2)),
            "failed": add_flow_run(store, Failed(message="boom"), age=datetime.timedelta(hours=1)),
            "running_other": add_flow_run(
                store, Running(), flow_name="etl", age=datetime.timedelta(minutes=1)
            ),
            "completed": add_flow_run(store, Completed()),
        }

    def ls_json(self, *args: str) -> list[dict]:
        code, output = invoke("runs", "ls", "--json", *args)
        assert code == 0, output
        return json.loads(output)

    def test_json_lists_newest_first(self, runs: dict[str, FlowRun]) -> None:
        listed = self.ls_json()

        assert [r["id"] for r in listed] == [
            str(runs[k].id) for k in ("completed", "running_other", "failed", "old_completed")
        ]
        assert listed[2]["state"] == "Failed" and listed[2]["message"] == "boom"

    def test_state_flow_since_and_limit_filter(self, runs: dict[str, FlowRun]) -> None:
        def ids(*args: str) -> list[str]:
            return [r["id"] for r in self.ls_json(*args)]

        assert ids("--state", "failed") == [str(runs["failed"].id)]
        assert ids("--state", "Completed", "--state", "RUNNING") == [
            str(runs[k].id) for k in ("completed", "running_other", "old_completed")
        ]
        assert ids("--flow", "etl") == [str(runs["running_other"].id)]
        assert ids("--flow", "nightly_prices", "--since", "2h") == [
            str(runs[k].id) for k in ("completed", "failed")
        ]
        assert ids("--state", "completed", "--limit", "1") == [str(runs["completed"].id)]

    def test_bad_filters_are_usage_errors(self, runs: dict[str, FlowRun]) -> None:
        code, output = invoke("runs", "ls", "--since", "yesterday")
        assert code == 2 and "not a duration" in output
        code, output = invoke("runs", "ls", "--state", "Finished")
        assert code == 2 and "unknown state 'Finished'" in output

    def test_table_shows_each_run_on_a_line(self, runs: dict[str, FlowRun]) -> None:
        code, output = invoke("runs", "ls", "--state", "failed")

        assert code == 0, output
        row = [line for line in output.splitlines() if str(runs["failed"].id) in line]
        assert len(row) == 1 and "Failed" in row[0] and runs["failed"].name in row[0]


class TestRunsShow:
    def test_task_runs_show_error_traceback_worker_duration_and_subflow(
        self, store: RedisRunStore
    ) -> None:
        flow_run = add_flow_run(store, Failed(message="1 of 2 task runs failed"))
        ok = Completed()
        ok.state_details.worker = "host-a:101"
        child_id = uuid.uuid4()
        ok.state_details.child_flow_run_id = child_id
        add_task_run(store, flow_run, "load", ok)
        bad = Failed(message="Task run failed: ZeroDivisionError('division by zero')")
        bad.state_details.worker = "host-b:202"
        add_task_run(store, flow_run, "divide", bad)

        code, output = invoke("runs", "show", str(flow_run.id)[:8], "--json")

        assert code == 0, output
        shown = json.loads(output)
        load, divide = shown["task_runs"]
        assert load["worker"] == "host-a:101" and load["child_flow_run_id"] == str(child_id)
        assert load["error"] is None and load["duration_seconds"] == pytest.approx(1.5)
        assert divide["worker"] == "host-b:202"
        assert "ZeroDivisionError" in divide["error"]
        assert shown["error"] == "1 of 2 task runs failed"

        code, text = invoke("runs", "show", str(flow_run.id))
        assert code == 0, text
        assert str(child_id) in text and "host-b:202" in text
        assert "divide (Failed): Task run failed: ZeroDivisionError" in text

    def test_a_failed_task_runs_traceback_is_printed_under_it(self, store: RedisRunStore) -> None:
        flow_run = add_flow_run(store, Failed(message="1 task run failed"))
        bad = Failed(message="Task run failed with exception: ZeroDivisionError")
        bad.state_details.traceback = (
            "Traceback (most recent call last):\n  File \"flows.py\", line 3, in divide\n"
            "ZeroDivisionError: division by zero\n"
        )
        add_task_run(store, flow_run, "divide", bad)

        code, text = invoke("runs", "show", flow_run.name)
        _, as_json = invoke("runs", "show", flow_run.name, "--json")

        assert code == 0, text
        assert "  divide (Failed): Task run failed with exception: ZeroDivisionError\n" \
            "    Traceback (most recent call last):\n" \
            '      File "flows.py", line 3, in divide\n' \
            "    ZeroDivisionError: division by zero" in text
        assert json.loads(as_json)["task_runs"][0]["traceback"].endswith("by zero\n")

    def test_a_paused_run_shows_the_input_it_waits_for(self, store: RedisRunStore) -> None:
        run = paused_for_bool(store)

        code, output = invoke("runs", "show", str(run.id))

        assert code == 0, output
        assert "waits for:" in output and "input <boolean>" in output
        assert f"celerity runs resume {run.id} --input '<boolean>'" in output


def paused_for_bool(store: RedisRunStore) -> FlowRun:
    """A flow run paused by ``pause_flow_run(wait_for_input=bool)``, as the engine leaves it."""
    from engine.input import input_model, keyset_from_paused_state

    paused = Paused(timeout_seconds=60, pause_key="1")
    keyset = keyset_from_paused_state(paused)
    paused.state_details.run_input_keyset = keyset
    run = add_flow_run(store, paused)
    schema = input_model(bool).model_json_schema()
    store.set_run_input(run.id, keyset["schema"], json.dumps(schema))
    return run


class TestRunsResume:
    def test_a_bare_value_resumes_a_plain_type_pause(self, store: RedisRunStore) -> None:
        # Given a run paused with wait_for_input=bool
        run = paused_for_bool(store)
        keyset = run.state.state_details.run_input_keyset

        # When it is resumed with a bare JSON value
        code, output = invoke("runs", "resume", run.name, "--input", "true")

        # Then it runs again and the input it receives is that value
        assert code == 0, output
        assert store.read_flow_run(run.id).state.is_running()
        assert json.loads(store.read_run_input(run.id, keyset["response"])) == {"value": True}

    def test_wrong_input_shows_the_schema(self, store: RedisRunStore) -> None:
        run = paused_for_bool(store)

        code, output = invoke("runs", "resume", str(run.id), "--input", '"yes"')

        assert code == 1, output
        assert "wrong type" in output
        assert 'It waits for input <boolean> (JSON schema: {"additionalProperties"' in output
        assert store.read_flow_run(run.id).state.is_paused()

    def test_missing_input_shows_the_schema(self, store: RedisRunStore) -> None:
        run = paused_for_bool(store)

        code, output = invoke("runs", "resume", str(run.id))

        assert code == 1 and "waits for input" in output and "<boolean>" in output, output


class TestRunsWatch:
    def test_without_a_fleet_watch_says_why(self) -> None:
        code, output = invoke("runs", "watch", "abcd")

        assert code == 2
        assert "runs watch follows a run in the fleet's Redis" in output

    def test_a_final_run_prints_its_picture_and_outcome(self, store: RedisRunStore) -> None:
        flow_run = add_flow_run(store, Completed(), name="done-run")
        for name in ("a", "b"):
            add_task_run(store, flow_run, name, Completed())

        code, output = invoke("runs", "watch", "done-run")

        assert code == 0, output
        assert "2/2 task runs final" in output and "Completed 2" in output
        assert "Flow run finished: Completed" in output


class TestNames:
    def test_run_names_rarely_repeat(self) -> None:
        import coolname

        # Some 370,000 pairs: 2,000 draws repeat about 5 names on average
        # (n^2 / 2N), and more than 20 with a chance under one in a million; a
        # small vocabulary (the old 225 pairs) repeats nearly all of them.
        assert coolname.get_combinations_count(2) > 300_000
        names = {generate_run_name() for _ in range(2000)}

        assert len(names) >= 1980
        assert all(name.count("-") >= 1 for name in names)

    @pytest.mark.parametrize(
        ("source", "expected"),
        [
            ("@flow\ndef nightly_prices():\n    pass\n", "nightly-prices"),
            ("@flow(retries=1)\nasync def nightly_prices():\n    pass\n", "nightly-prices"),
            ('@engine.flow(name="Prices at night")\ndef nightly_prices():\n    pass\n',
             "Prices at night"),
            ("def broken(:\n", "nightly-prices"),
        ],
    )
    def test_a_submitted_flow_is_named_as_flow_run_names_it(
        self, tmp_path: Path, source: str, expected: str
    ) -> None:
        path = tmp_path / "named.py"
        path.write_text(source)

        assert declared_flow_name(path, "nightly_prices") == expected

    def test_durations(self) -> None:
        assert parse_duration("10m") == datetime.timedelta(minutes=10)
        assert parse_duration("1d 2h") == datetime.timedelta(hours=26)
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration("10")
