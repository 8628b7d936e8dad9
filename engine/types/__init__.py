"""Types that ported Prefect code imports from ``prefect.types``.

Celerity's timestamps are plain timezone-aware ``datetime`` objects, so
``DateTime`` is ``datetime.datetime`` itself rather than a subclass.
"""

from __future__ import annotations

from engine.types._datetime import Date, DateTime

__all__ = ["Date", "DateTime"]
