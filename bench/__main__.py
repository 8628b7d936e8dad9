"""``python -m bench [--runs N] [--n 10000] [--chain 200] [--workers 2] [--events]``.

Compares Celerity (flows whose task runs go to Celery workers) with plain Celery
on the same throwaway Redis: fan-out, a chain of dependent tasks and map-reduce,
plus the coordinator's peak memory per task. Prints a table and writes
``bench/results.json``.
"""

from __future__ import annotations

import argparse
import sys

from bench.harness import BenchError, Options, run_all
from bench.report import goal_rows, print_tables, scenario_rows, write_json


def parse_options(argv: list[str] | None = None) -> Options:
    """The command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[2])
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (median reported)")
    parser.add_argument("--n", type=int, default=10000, help="tasks in fan-out and map-reduce")
    parser.add_argument("--chain", type=int, default=200, help="length of the dependent chain")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per system")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork processes per worker")
    parser.add_argument("--chord-timeout", type=float, default=60.0,
                        help="seconds before a raw Celery chord counts as 'timeout'")
    parser.add_argument("--events", action="store_true",
                        help="workers of both systems send task events and heartbeats (-E)")
    args = parser.parse_args(argv)
    return Options(runs=args.runs, n=args.n, chain=args.chain, workers=args.workers,
                   concurrency=args.concurrency, chord_timeout=args.chord_timeout,
                   events=args.events)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables, write the JSON; the exit code."""
    opts = parse_options(argv)
    try:
        results = run_all(opts)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; all processes stopped.", file=sys.stderr)
        return 130
    rows = scenario_rows(results, opts)
    goals = goal_rows(rows)
    print_tables(rows, goals, opts)
    print(f"Figures written to {write_json(results, rows, goals, opts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
