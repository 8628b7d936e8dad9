"""Selecting flow runs for ``celerity runs ls``: by state, flow name and age.

Example::

    runs = select_flow_runs(store, RunFilter(states=("failed",), since=parse_duration("2h")), 20)
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.schemas import FlowRun
from engine.states import StateType
from engine.store.base import RunStore

# The names states take beyond their types' (see engine.states' constructors).
STATE_NAMES = (
    "AwaitingRetry",
    "AwaitingConcurrencySlot",
    "Cached",
    "InfrastructurePending",
    "Late",
    "NotReady",
    "Retrying",
    "Submitting",
    "Suspended",
    "TimedOut",
)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")


def known_states() -> list[str]:
    """Every state a filter may name: the types (``Completed``) and the named states."""
    return [t.value.capitalize() for t in StateType] + list(STATE_NAMES)


def parse_duration(text: str) -> datetime.timedelta:
    """``"90s"``, ``"10m"``, ``"2h"``, ``"1d"``, ``"1w"`` or sums (``"1h30m"``) as a timedelta.

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    """
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"not a duration: {text!r} (e.g. 30s, 10m, 2h, 1d, 1w, 1h30m)")
    return datetime.timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def _key(name: str) -> str:
    return name.replace("-", "").replace("_", "").lower()


@dataclass(frozen=True)
class RunFilter:
    """What ``runs ls`` keeps: any of ``states`` (names or types), one flow, runs created since."""

    states: tuple[str, ...] = ()
    flow: str | None = None
    since: datetime.timedelta | None = None
    _now: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.UTC))

    def __post_init__(self) -> None:
        known = {_key(name) for name in known_states()}
        unknown = [s for s in self.states if _key(s) not in known]
        if unknown:
            raise ValueError(f"unknown state {unknown[0]!r}; one of: {', '.join(known_states())}")

    @property
    def cutoff(self) -> datetime.datetime | None:
        """Runs created before this are left out."""
        return self._now - self.since if self.since is not None else None

    def keeps(self, run: FlowRun) -> bool:
        """Whether ``run`` passes every criterion given."""
        if self.states and not self._state_matches(run):
            return False
        if self.flow is not None and _key(run.flow_name) != _key(self.flow):
            return False
        cutoff = self.cutoff
        return cutoff is None or run.created >= cutoff

    def _state_matches(self, run: FlowRun) -> bool:
        if run.state is None:
            return False
        wanted = {_key(s) for s in self.states}
        return _key(run.state.name or "") in wanted or _key(run.state.type.value) in wanted


def select_flow_runs(store: RunStore, run_filter: RunFilter, limit: int) -> list[FlowRun]:
    """Up to ``limit`` of the newest flow runs that ``run_filter`` keeps, newest first.

    The store lists newest first without filtering, so this reads a growing
    window until it holds enough matches, the store is exhausted, or (with
    ``since``) the window reaches runs older than the cutoff.
    """
    window = limit
    while True:
        runs = store.list_flow_runs(window)
        kept = [run for run in runs if run_filter.keeps(run)]
        if len(kept) >= limit or len(runs) < window or _past_cutoff(runs, run_filter):
            return kept[:limit]
        window *= 4


def _past_cutoff(runs: Iterable[FlowRun], run_filter: RunFilter) -> bool:
    cutoff = run_filter.cutoff
    oldest = min((run.created for run in runs), default=None)
    return cutoff is not None and oldest is not None and oldest < cutoff
