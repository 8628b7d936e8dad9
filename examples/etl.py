"""An ETL-like map/reduce flow: extract, transform.map, a flaky step, load, a subflow.

This is Prefect code with the import root changed to ``engine``. ``flaky``
fails on its first attempt and succeeds on the retry; it decides from the
task run's ``run_count`` rather than shared memory, so the outcome is the
same on threads and on a fleet of Celery workers.

Run it with ``python examples/etl.py`` or
``celerity flow run examples/etl.py:etl --param n=8``.
"""

from __future__ import annotations

import time

from engine import flow, get_run_logger, task
from engine.context import TaskRunContext


@task
def extract(n: int) -> list[dict[str, int]]:
    """Produce ``n`` source records."""
    return [{"id": i, "value": i * 10} for i in range(n)]


@task
def transform(record: dict[str, int]) -> dict[str, int]:
    """Enrich one record (one task run per record)."""
    time.sleep(0.05)  # stands in for real work, so that a fleet shares the map
    return {**record, "value": record["value"] + 1}


@task(retries=2)
def flaky(records: list[dict[str, int]]) -> list[dict[str, int]]:
    """Fail on the first attempt, succeed on the retry (like a timing-out API call)."""
    task_run = TaskRunContext.get().task_run
    if task_run.run_count == 1:
        raise ConnectionError("upstream API timed out (first attempt always does)")
    print(f"attempt {task_run.run_count} accepted {len(records)} records")
    return records


@task
def load(records: list[dict[str, int]]) -> int:
    """Reduce the records to one figure and 'write' it."""
    total = sum(record["value"] for record in records)
    get_run_logger().info("loaded %d records, total %d", len(records), total)
    return total


@task
def count(records: list[dict[str, int]]) -> int:
    """Count the rows (runs on the subflow's own task runner)."""
    return len(records)


@flow
def summarize(records: list[dict[str, int]], total: int) -> dict[str, float]:
    """A subflow: a child flow run of ``etl`` with a task of its own."""
    rows = count.submit(records).result()
    return {"rows": rows, "total": total, "mean": total / rows if rows else 0.0}


@flow(log_prints=True)
def etl(n: int = 8) -> dict[str, float]:
    """Extract ``n`` records, transform each, pass the flaky check, load, summarize."""
    logger = get_run_logger()
    records = extract.submit(n)
    transformed = transform.map(records)
    checked = flaky.submit(transformed)
    total = load.submit(checked)
    summary = summarize(checked.result(), total.result())
    logger.info("summary: %s", summary)
    print(f"etl finished with {summary['rows']} rows")
    return summary


if __name__ == "__main__":
    print(etl())
