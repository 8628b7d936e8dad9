"""Time helpers under the names Prefect code uses (``prefect.types._datetime``).

Every timestamp Celerity writes is timezone-aware UTC (``engine.states.now``).
"""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

DateTime = datetime.datetime
Date = datetime.date


def now(tz: str | datetime.tzinfo = "UTC") -> datetime.datetime:
    """The current time in ``tz`` (a zone name or tzinfo), timezone-aware."""
    return datetime.datetime.now(_zone(tz))


def from_timestamp(ts: float, tz: str | datetime.tzinfo = "UTC") -> datetime.datetime:
    """The aware datetime of a POSIX timestamp, in ``tz``."""
    return datetime.datetime.fromtimestamp(ts, _zone(tz))


def _zone(tz: str | datetime.tzinfo) -> datetime.tzinfo:
    if isinstance(tz, datetime.tzinfo):
        return tz
    return datetime.UTC if tz.upper() == "UTC" else ZoneInfo(tz)


__all__ = ["Date", "DateTime", "from_timestamp", "now"]
