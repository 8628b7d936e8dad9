"""The engine's view of settings: read lazily so ``engine`` imports stay light.

There is one settings object, ``broker_config``'s ``CeleritySettings``. A block
may run with a changed copy of it (``overridden_settings``, which
``engine.settings.temporary_settings`` uses): the copy lives in a context
variable, so it follows the block's threads and tasks in this process and no
one else's.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_override: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "celerity_settings_override", default=None
)


def current_settings() -> Any:
    """The effective settings: a block's override, else environment, config file, defaults."""
    found = _override.get()
    if found is not None:
        return found
    from broker_config.settings import get_settings

    return get_settings()


@contextmanager
def overridden_settings(settings: Any) -> Iterator[Any]:
    """Inside the block, ``current_settings()`` is ``settings``."""
    previous = _override.get()
    token = _override.set(settings)
    try:
        yield settings
    finally:
        try:
            _override.reset(token)
        except ValueError:
            # Left in another context than it was entered in (an async fixture's
            # teardown): put the previous value back instead.
            _override.set(previous)
