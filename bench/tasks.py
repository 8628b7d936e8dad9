"""Celerity tasks and flows for the benchmarks (workers import this as ``bench.tasks``).

The tasks do (almost) nothing, so the measurements are the engine's overhead:
creating runs, publishing, executing, persisting results and completing futures.
"""

from __future__ import annotations

from engine import flow, task, wait


@task
def noop(x: int) -> int:
    """Return ``x`` unchanged."""
    return x


@task
def step(x: int) -> int:
    """Return ``x + 1``: one hop of a chain."""
    return x + 1


@task
def total(values: list[int]) -> int:
    """Sum the upstream values: the reduce step of map-reduce."""
    return sum(values)


@flow
def fan_out(n: int) -> int:
    """Map ``noop`` over ``range(n)`` and wait for all of them; returns how many finished."""
    futures = noop.map(range(n))
    done, not_done = wait(futures)
    if not_done:
        raise RuntimeError(f"{len(not_done)} task runs did not finish")
    return len(done)


@flow
def chain(length: int) -> int:
    """Run ``length`` dependent ``step`` tasks, each on the previous one's result."""
    future = step.submit(0)
    for _ in range(length - 1):
        future = step.submit(future)
    return future.result()


@flow
def map_reduce(n: int) -> int:
    """Map ``noop`` over ``range(n)`` and reduce with ``total`` on the list of futures."""
    return total.submit(noop.map(range(n))).result()


@flow
def warm_up(n: int) -> int:
    """A small map used to check that the workers answer."""
    return len(noop.map(range(n)).result())


FLOWS = {"fan_out": fan_out, "chain": chain, "map_reduce": map_reduce, "warm_up": warm_up}
