"""Fixtures for the semantics suite.

This module must not import engine modules at import time, so that the suite
still collects while parts of the engine are missing.
"""

import uuid

import pytest


@pytest.fixture
def key(request) -> str:
    """A unique side-effect key for one test (see ``_side_effects``)."""
    return f"{request.node.name}-{uuid.uuid4().hex}"
