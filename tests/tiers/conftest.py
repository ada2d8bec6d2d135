"""Fixtures for the tier tests: caches over the shared stack, and private Redis / Memcached
servers that a test may stop, freeze and restart without touching anyone else's."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tiers import MultiTierCache, TTLPolicy


@pytest.fixture
def prefix(namespace: str) -> str:
    """A key prefix no other test uses (keys are ``{prefix}:v2:...``)."""
    return namespace.rstrip(".")


def steady_policy(seed: int = 1) -> TTLPolicy:
    """No jitter, so TTLs are exactly the policy's nominal values."""
    return TTLPolicy(jitter=0.0, rng=random.Random(seed))


@pytest_asyncio.fixture(loop_scope="function")
async def cache(
    stack_urls: object, redis_url: str, memcached_addr: str
) -> AsyncIterator[MultiTierCache]:
    c = MultiTierCache.from_urls(
        "memory://?max_entries=1000",
        f"memcached://{memcached_addr}",
        redis_url,
        ttl_policy=steady_policy(),
        timeout_s=1.0,  # generous: the shared machine is busy; breakers are tested elsewhere
    )
    yield c
    await c.close()
