"""run_flow_in_subprocess(env=...): the child runs with those environment
variables set (None removes one) before anything of the flow runs."""

import os

from engine import flow
from engine.flow_engine import read_subprocess_result, run_flow_in_subprocess


@flow
def reports_env(names: list):
    return {name: os.environ.get(name) for name in names}


class TestSubprocessEnvironment:
    def test_variables_are_set_and_removed_in_the_child(self, monkeypatch):
        monkeypatch.setenv("SUBPROCESS_TEST_REMOVED", "present in the parent")
        process = run_flow_in_subprocess(
            reports_env,
            parameters={"names": ["SUBPROCESS_TEST_SET", "SUBPROCESS_TEST_REMOVED"]},
            env={"SUBPROCESS_TEST_SET": "from env", "SUBPROCESS_TEST_REMOVED": None},
        )
        process.join(timeout=60)
        assert process.exitcode == 0
        assert read_subprocess_result(process).result() == {
            "SUBPROCESS_TEST_SET": "from env",
            "SUBPROCESS_TEST_REMOVED": None,
        }
        # The parent's environment is untouched
        assert os.environ["SUBPROCESS_TEST_REMOVED"] == "present in the parent"
