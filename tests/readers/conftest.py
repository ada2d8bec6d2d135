"""Fixtures every reader test module shares."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.readers._helpers import reader_cache
from tiers import MultiTierCache


@pytest.fixture
def prefix(namespace: str) -> str:
    """The test's own cache key prefix (its namespace without the dot)."""
    return namespace.rstrip(".")


@pytest_asyncio.fixture(loop_scope="function")
async def cache(stack_urls: Any) -> AsyncIterator[MultiTierCache]:
    """The reader's three tiers over the stack (a module may override it)."""
    cache = reader_cache(stack_urls)
    yield cache
    await cache.close()
