"""@flow and @task keep a function's types for mypy users (issue 8 behaviour 1).

A decorated function is a ``Flow[P, R]`` / ``Task[P, R]``: calls are checked
against the function's parameters and give its return type; ``return_state``
gives a State.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from mypy import api

SNIPPET = """
from engine import Flow, Task, flow, task


@task
def double(x: int) -> int:
    return 2 * x


@task(retries=2)
def triple(x: int) -> int:
    return 3 * x


@flow(log_prints=True)
def pipeline(n: int) -> str:
    return str(double(n) + triple(n) + double.submit(n).result())


@flow
async def apipe(n: int) -> int:
    return n


async def main() -> None:
    reveal_type(await apipe(1))


reveal_type(pipeline(1))
reveal_type(triple(1))
reveal_type(pipeline(1, return_state=True))
annotated_task: Task[[int], int] = double
annotated_flow: Flow[[int], str] = pipeline
pipeline("not an int")
"""


def test_calls_are_checked_against_the_function(tmp_path: Path):
    module = tmp_path / "typed_user_code.py"
    module.write_text(textwrap.dedent(SNIPPET))
    report, _, _ = api.run([str(module), "--no-error-summary", "--hide-error-context"])
    lines = [line.split(": ", 1)[1] for line in report.splitlines() if "typed_user_code" in line]
    # mypy versions differ in qualifying names ("builtins.int" or "int")
    revealed = [
        line.split('"')[1].rpartition(".")[2]
        for line in lines
        if line.startswith("note: Revealed type")
    ]
    assert revealed == ["int", "str", "int", "State[Any]"], report
    errors = [line for line in lines if line.startswith("error")]
    assert len(errors) == 1 and 'argument type "str"' in errors[0], report
