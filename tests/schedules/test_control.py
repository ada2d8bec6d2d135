"""The override and the leader lease against the real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from schedules import ControlKeys, LeaderLease, OverrideStore, Phase

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(loop_scope="function")
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def keys(namespace: str) -> ControlKeys:
    return ControlKeys.for_fleet("virt", namespace)


def test_control_keys_follow_the_key_scheme() -> None:
    assert ControlKeys.for_fleet().override == "virt:v2:control:phase_override"
    assert ControlKeys.for_fleet("virt", "t1.").leader == "virt:v2:control:t1.clock_leader"


async def test_an_override_expires_by_itself(redis: aioredis.Redis, keys: ControlKeys) -> None:
    store = OverrideStore(redis, keys.override)
    set_ = await store.set(Phase.MARKET_HOURS, 1.5, by="test")
    got = await store.get()
    assert got is not None and got.phase is Phase.MARKET_HOURS
    assert abs((got.until - set_.until).total_seconds()) < 0.01
    assert 0 < await redis.pttl(keys.override) <= 1500  # Redis expires it, not us
    deadline = time.monotonic() + 20
    while await store.get() is not None:
        assert time.monotonic() < deadline, "override did not expire"
        await asyncio.sleep(0.1)
    assert await redis.exists(keys.override) == 0


async def test_clear_and_a_malformed_override(redis: aioredis.Redis, keys: ControlKeys) -> None:
    store = OverrideStore(redis, keys.override)
    assert await store.clear() is False
    await store.set("weekend", 60)
    assert await store.clear() is True
    assert await store.get() is None
    await redis.set(keys.override, b"{not json", px=5000)
    assert await store.get() is None  # logged and ignored: the calendar rules
    await redis.set(keys.override, b'{"phase": "lunch", "until_ms": 1}', px=5000)
    assert await store.get() is None
    await redis.delete(keys.override)
    with pytest.raises(ValueError, match="positive"):
        await store.set(Phase.WEEKEND, 0)


async def test_one_lease_holder_and_takeover_after_it_stops(
    redis: aioredis.Redis, keys: ControlKeys
) -> None:
    a = LeaderLease(redis, keys.leader, "clock-a", ttl_s=1.0)
    b = LeaderLease(redis, keys.leader, "clock-b", ttl_s=1.0)
    assert await a.hold() is True
    assert await b.hold() is False
    assert await a.hold() is True  # renewal
    assert await a.holder() == "clock-a"
    await b.release()  # compare-and-delete: not b's to release
    assert await a.holder() == "clock-a"
    # a stops renewing (dies): b takes over once the lease expires
    deadline = time.monotonic() + 20
    while not await b.hold():
        assert time.monotonic() < deadline, "b never took over"
        await asyncio.sleep(0.2)
    assert await b.holder() == "clock-b"
    assert await a.hold() is False and not a.held
    await b.release()
    assert await b.holder() is None


async def test_a_leader_that_loses_redis_steps_down_within_its_ttl() -> None:
    # a Redis that does not answer: nothing listens on this port
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    lease = LeaderLease(dead, "virt:v2:control:x", "me", ttl_s=0.5)
    assert await lease.hold() is False
    await dead.aclose()
