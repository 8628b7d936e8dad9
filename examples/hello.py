"""The smallest Celerity flow: one task called three ways (inline, submit, map).

This is Prefect code with the import root changed to ``engine``.
Run it with ``python examples/hello.py`` or ``celerity flow run examples/hello.py:hello``.
"""

from engine import flow, task


@task
def greet(name: str) -> str:
    return f"hello, {name}"


@flow
def hello(names: list[str] | None = None) -> list[str]:
    names = names or ["ada", "grace", "linus"]
    first = greet(names[0])                      # inline: runs now, returns the value
    second = greet.submit(names[-1]).result()    # submitted: a future, resolved here
    mapped = greet.map(names).result()           # one task run per name
    return [first, second, *mapped]


if __name__ == "__main__":
    print(hello())
