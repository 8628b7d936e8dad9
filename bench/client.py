"""One measured scenario in a fresh process: ``python -m bench.client SYSTEM SCENARIO ...``.

The process is the coordinator (Celerity: the process calling the flow; raw
Celery: the process publishing and collecting). It records its resident memory
just before the scenario starts and its peak resident memory after it, times the
scenario with ``time.perf_counter`` and writes one JSON object to ``--out``.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHORD_TIMEOUT_SECONDS = 60.0


def rss_kb() -> int:
    """This process's current resident set size in KB (Linux ``/proc``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def max_rss_kb() -> int:
    """This process's peak resident set size so far, in KB (Linux units)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def expected_value(scenario: str, n: int) -> int:
    """What a correct run of ``scenario`` of size ``n`` returns."""
    if scenario in ("map_reduce", "chord", "group_reduce"):
        return n * (n - 1) // 2
    return n


def preload(system: str) -> None:
    """Import and build what the first call would (Celery app, runner, canvas) before measuring.

    A long-lived coordinator has paid these once; counting them would charge
    some 15 MB of one-time imports to the scenario's tasks. That includes the
    run-name vocabulary (coolname loads its word lists on first use, some 40 ms,
    which would be 15% of a 200-hop chain).
    """
    if system == "celerity":
        from engine.flows import generate_run_name
        from workers.app import get_app
        from workers.task_runner import CeleryTaskRunner  # noqa: F401

        generate_run_name()
        app = get_app()
    else:
        import celery.canvas  # noqa: F401

        from bench.raw_app import app

        app.backend  # noqa: B018  (creates the result backend)
    app.amqp  # noqa: B018  (builds the producer side)


def celerity_scenario(scenario: str, n: int) -> Callable[[], Any]:
    """A callable that runs the Celerity flow for ``scenario``."""
    from bench.tasks import FLOWS

    flow = FLOWS[scenario]
    return lambda: flow(n)


def raw_scenario(scenario: str, n: int, timeout: float) -> Callable[[], Any]:
    """A callable that runs the plain-Celery version of ``scenario``."""
    from celery import chain, chord, group

    from bench.raw_app import noop, step, total

    def fan_out() -> int:
        return len(group(noop.s(i) for i in range(n)).apply_async().get())

    def chained() -> int:
        return chain(step.s(0), *(step.s() for _ in range(n - 1))).apply_async().get()

    def group_reduce() -> int:
        return sum(group(noop.s(i) for i in range(n)).apply_async().get())

    def chorded() -> int:
        deadline = time.monotonic() + timeout
        result = chord((noop.s(i) for i in range(n)), total.s()).apply_async()
        return result.get(timeout=max(0.1, deadline - time.monotonic()))

    def warm_up() -> int:
        return len(group(noop.s(i) for i in range(n)).apply_async().get(timeout=timeout))

    scenarios = {"fan_out": fan_out, "chain": chained, "group_reduce": group_reduce,
                 "chord": chorded, "warm_up": warm_up}
    return scenarios[scenario]


def measure(run: Callable[[], Any], scenario: str, n: int) -> dict[str, Any]:
    """Run once; time, outcome and memory figures as a dict."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    gc.collect()
    baseline, peak_before = rss_kb(), max_rss_kb()
    started = time.perf_counter()
    try:
        value, status = run(), "ok"
    except CeleryTimeout:
        value, status = None, "timeout"
    elapsed = time.perf_counter() - started
    peak_after = max_rss_kb()
    if status == "ok" and value != expected_value(scenario, n):
        status = "wrong"
    return {
        "status": status, "value": value, "elapsed": elapsed,
        "rss_baseline_kb": baseline, "maxrss_before_kb": peak_before,
        "maxrss_after_kb": peak_after,
        "kb_per_task": max(0, peak_after - baseline) / n,
    }


def main() -> None:
    """Parse the command line, run the scenario, write the JSON result."""
    parser = argparse.ArgumentParser(prog="python -m bench.client")
    parser.add_argument("system", choices=["celerity", "raw"])
    parser.add_argument("scenario")
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=CHORD_TIMEOUT_SECONDS)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rss_at_start = rss_kb()
    preload(args.system)
    if args.system == "celerity":
        run = celerity_scenario(args.scenario, args.n)
    else:
        run = raw_scenario(args.scenario, args.n, args.timeout)
    outcome = measure(run, args.scenario, args.n)
    outcome.update(system=args.system, scenario=args.scenario, n=args.n,
                   rss_before_preload_kb=rss_at_start)
    Path(args.out).write_text(json.dumps(outcome))


if __name__ == "__main__":
    main()
