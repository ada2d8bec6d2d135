"""Fixtures every reader test module shares."""

from __future__ import annotations

import pytest


@pytest.fixture
def prefix(namespace: str) -> str:
    """The test's own cache key prefix (its namespace without the dot)."""
    return namespace.rstrip(".")
