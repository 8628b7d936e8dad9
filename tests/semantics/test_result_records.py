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
