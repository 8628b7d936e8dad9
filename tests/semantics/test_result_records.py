"""Result records on both runners: what one process records under a key, another reads.

On the Celery runner the task runs below execute in worker processes, so a
record read there was written by the flow's process (and the other way round).
"""

import json
import uuid

from engine import flow, task
from engine.results import ResultStore, get_result_store
from engine.transactions import transaction


@task
def read_record(key):
    store = get_result_store()
    return store.exists(key), store.read(key).result


@task(result_serializer="json")
def rows(n):
    return {"rows": list(range(n))}


@task(result_serializer="json")
def an_object():
    return object()


@task
def write_json_record(directory, key, value):
    ResultStore(result_storage=directory, serializer="json").write(value, key=key)


class TestRecordsAcrossProcesses:
    def test_a_record_committed_by_the_flow_is_read_by_a_task_run(self):
        key = f"record-{uuid.uuid4().hex}"

        @flow
        def commit_then_read():
            with transaction(key=key) as txn:
                txn.stage({"rows": 3})
            return read_record.submit(key).result()

        assert commit_then_read() == (True, {"rows": 3})

    def test_a_json_record_written_by_a_task_run_is_a_json_file(self, tmp_path):
        key = f"record-{uuid.uuid4().hex}"

        @flow
        def write_it():
            write_json_record.submit(str(tmp_path), key, {"rows": [1, 2]}).wait()

        write_it()
        document = json.loads((tmp_path / key).read_bytes())
        assert document["result"] == {"rows": [1, 2]}
        assert document["metadata"]["serializer"]["type"] == "json"
        assert ResultStore(result_storage=tmp_path).read(key).result == {"rows": [1, 2]}

    def test_a_record_written_by_a_task_run_makes_the_key_committed_here(self):
        key = f"record-{uuid.uuid4().hex}"

        @flow
        def write_then_check():
            write_in_task.submit(key).wait()
            with transaction(key=key) as txn:
                return txn.is_committed(), txn.read().result

        assert write_then_check() == (True, "from a task run")


@task
def write_in_task(key):
    get_result_store().write("from a task run", key=key)


class TestResultSerializer:
    def test_a_task_with_the_json_serializer_writes_its_result_as_json(self, tmp_path):
        # Given a task whose results are JSON, stored in a directory under a known key
        key = f"rows-{uuid.uuid4().hex}"
        stored = rows.with_options(result_storage=str(tmp_path), result_storage_key=key)

        @flow
        def make_rows():
            return stored.submit(3).result()

        # When it runs, then its value comes back and the file is a JSON document of it
        assert make_rows() == {"rows": [0, 1, 2]}
        document = json.loads((tmp_path / key).read_bytes())
        assert document["result"] == {"rows": [0, 1, 2]}
        assert document["metadata"]["serializer"]["type"] == "json"

    def test_a_value_json_cannot_hold_fails_the_task_run_saying_so(self, tmp_path):
        @flow
        def submit_object():
            future = an_object.with_options(result_storage=str(tmp_path)).submit()
            future.wait()
            return future.state.is_failed(), future.state.message

        failed, message = submit_object()
        assert failed
        assert "'json' serializer" in message and "could not be stored" in message

