"""The signing key of one test session, shared by the test process and every fleet it starts.

A fleet has no default key, and session-scoped fleets start before any
function-scoped fixture runs, so the key is made once, here, at import.
"""

from __future__ import annotations

import secrets

SESSION_SIGNING_KEY = secrets.token_urlsafe(32)
