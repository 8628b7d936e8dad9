"""Medians, goal checks, the printed table and ``bench/results.json``."""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.harness import Options

TABLE_WIDTH = 150  # when printing to a pipe or file (make, CI), where rich would assume 80
RESULTS_PATH = Path(__file__).resolve().parent / "results.json"

# The targets from the performance issue.
FAN_OUT_MIN_RATIO, FAN_OUT_GOAL_RATIO = 1.0, 2.0
MAP_REDUCE_MAX_OVER_FAN_OUT = 1.5
MEMORY_GOAL_KB_PER_TASK = 2.0


def median_of(outcomes: list[dict[str, Any]], key: str) -> float | None:
    """Median of ``key`` over the successful outcomes, None when none succeeded."""
    values = [o[key] for o in outcomes if o.get("status") == "ok"]
    return statistics.median(values) if values else None


def failure_of(outcomes: list[dict[str, Any]]) -> str:
    """The first non-ok status ('timeout', 'error', 'wrong'), or 'no runs'."""
    return next((o["status"] for o in outcomes if o.get("status") != "ok"), "no runs")


def _status(outcomes: list[dict[str, Any]], median: float | None) -> str:
    return "ok" if median is not None else failure_of(outcomes)


def _ratio(raw: float | None, celerity: float | None) -> float | None:
    return raw / celerity if raw and celerity else None


def _hop_ms(seconds: float | None, hops: int) -> float | None:
    return seconds / hops * 1000 if seconds is not None else None


def scenario_rows(results: dict[str, Any], opts: Options) -> list[dict[str, Any]]:
    """One summary row per scenario: medians, ratio, per-hop latency, coordinator memory."""
    cel, raw = results["celerity"], results["raw"]
    pairs = [
        (f"fan-out {opts.n}", "fan_out", "fan_out", None),
        (f"chain {opts.chain}", "chain", "chain", opts.chain),
        (f"map-reduce {opts.n} (raw: group + client sum)", "map_reduce", "group_reduce", None),
    ]
    rows = []
    for label, cel_key, raw_key, hops in pairs:
        cel_s, raw_s = median_of(cel[cel_key], "elapsed"), median_of(raw[raw_key], "elapsed")
        rows.append({
            "scenario": label, "key": cel_key,
            "celerity_s": cel_s, "celerity_status": _status(cel[cel_key], cel_s),
            "raw_s": raw_s, "raw_status": _status(raw[raw_key], raw_s),
            "ratio": _ratio(raw_s, cel_s),
            "celerity_hop_ms": _hop_ms(cel_s, hops) if hops else None,
            "raw_hop_ms": _hop_ms(raw_s, hops) if hops else None,
            "celerity_kb_per_task": median_of(cel[cel_key], "kb_per_task"),
            "raw_client_kb_per_task": median_of(raw[raw_key], "kb_per_task"),
        })
    chord_s = median_of(raw["chord"], "elapsed")
    rows.append({
        "scenario": f"map-reduce {opts.n} (raw: chord, {opts.chord_timeout:g} s limit)",
        "key": "chord", "celerity_s": None, "celerity_status": "n/a",
        "raw_s": chord_s, "raw_status": _status(raw["chord"], chord_s),
        "ratio": None, "celerity_hop_ms": None, "raw_hop_ms": None,
        "celerity_kb_per_task": None,
        "raw_client_kb_per_task": median_of(raw["chord"], "kb_per_task"),
    })
    return rows


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def goal_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's goals, each with the measured figure and whether it is met."""
    by_key = {row["key"]: row for row in rows}
    fan, chain, mr = by_key["fan_out"], by_key["chain"], by_key["map_reduce"]
    ratio = fan["ratio"]
    fan_verdict = "n/a" if ratio is None else (
        "goal met" if ratio >= FAN_OUT_GOAL_RATIO else
        "min met, below goal" if ratio >= FAN_OUT_MIN_RATIO else "NOT met")
    mr_over = _ratio(mr["celerity_s"], fan["celerity_s"])
    hop_cel, hop_raw = chain["celerity_hop_ms"], chain["raw_hop_ms"]
    goals = [
        {"goal": "fan-out throughput Celerity/raw", "target": "≥ 1.0x (goal 2x)",
         "measured": _fmt(ratio, "x"), "verdict": fan_verdict},
        {"goal": "map-reduce / fan-out time (Celerity)",
         "target": f"≤ {MAP_REDUCE_MAX_OVER_FAN_OUT}x",
         "measured": _fmt(mr_over, "x"),
         "verdict": _verdict(None if mr_over is None else mr_over <= MAP_REDUCE_MAX_OVER_FAN_OUT)},
        {"goal": "chain per-hop latency", "target": f"≤ raw ({_fmt(hop_raw, ' ms')})",
         "measured": _fmt(hop_cel, " ms"),
         "verdict": _verdict(None if hop_cel is None or hop_raw is None else hop_cel <= hop_raw)},
    ]
    for row in (fan, mr):
        kb = row["celerity_kb_per_task"]
        goals.append({"goal": f"coordinator memory, {row['scenario'].split(' (')[0]}",
                      "target": f"< {MEMORY_GOAL_KB_PER_TASK:g} KB/task",
                      "measured": _fmt(kb, " KB"),
                      "verdict": _verdict(None if kb is None else kb < MEMORY_GOAL_KB_PER_TASK)})
    return goals


def _fmt(value: float | None, unit: str = "", fallback: str = "—") -> str:
    if value is None:
        return fallback
    return f"{value:.2f}{unit}"


def _cell(row: dict[str, Any], side: str) -> str:
    value, status = row[f"{side}_s"], row[f"{side}_status"]
    return _fmt(value) if value is not None else ("—" if status == "n/a" else status)


def print_tables(rows: list[dict[str, Any]], goals: list[dict[str, Any]], opts: Options) -> None:
    """Print the scenario table and the goals table."""
    console = Console() if sys.stdout.isatty() else Console(width=TABLE_WIDTH)
    table = Table(title=f"Celerity vs raw Celery — median of {opts.runs} run(s), "
                        f"{opts.workers} workers × -c {opts.concurrency} prefork, "
                        f"events {'on' if opts.events else 'off'}")
    for header in ("Scenario", "Celerity (s)", "raw Celery (s)", "Throughput Celerity/raw",
                   "Hop ms Celerity", "Hop ms raw", "Coord KB/task Celerity",
                   "Client KB/task raw"):
        table.add_column(header, justify="left" if header == "Scenario" else "right")
    for row in rows:
        table.add_row(row["scenario"], _cell(row, "celerity"), _cell(row, "raw"),
                      _fmt(row["ratio"], "x"), _fmt(row["celerity_hop_ms"]),
                      _fmt(row["raw_hop_ms"]), _fmt(row["celerity_kb_per_task"]),
                      _fmt(row["raw_client_kb_per_task"]))
    console.print(table)
    goal_table = Table(title="Goals (performance issue)")
    for header in ("Goal", "Target", "Measured", "Verdict"):
        goal_table.add_column(header)
    for goal in goals:
        style = "green" if goal["verdict"] in ("met", "goal met") else "red"
        goal_table.add_row(goal["goal"], goal["target"], goal["measured"],
                           f"[{style}]{goal['verdict']}[/]")
    console.print(goal_table)


def write_json(results: dict[str, Any], rows: list[dict[str, Any]], goals: list[dict[str, Any]],
               opts: Options, path: Path = RESULTS_PATH) -> Path:
    """Write options, summary rows, goals and every run's raw outcome to ``path``."""
    payload = {"options": asdict(opts), "scenarios": rows, "goals": goals, "runs": results}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
