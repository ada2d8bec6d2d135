"""The faithful old design, ``DirectCacheAdapter``, on the real Memcached and Redis: L1
dict, Memcached primary, Redis read only on a Memcached miss, one TTL, read-through to the
origin with write-back, no promotion."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from tests.tiers.test_write_read import memcached_ttl, ticker_key
from tiers import DirectCacheAdapter

pytestmark = pytest.mark.integration


class Origin:
    """A loader that counts its calls (the A/B run's origin is ccxt against the simulator;
    here the read path itself is under test)."""

    def __init__(self, as_of: int = 1_700_000_000_000) -> None:
        self.calls = 0
        self.as_of = as_of

    async def __call__(self) -> tuple[Any, int]:
        self.calls += 1
        return {"last": 100.0 + self.calls}, self.as_of


def adapter(memcached_addr: str, redis_url: str, **kw: Any) -> DirectCacheAdapter:
    return DirectCacheAdapter.from_urls(f"memcached://{memcached_addr}", redis_url, **kw)


class Adapters:
    """Makes adapters (each one process of the old design); at the end deletes the keys
    the test names from every tier and closes them all."""

    def __init__(self, memcached_addr: str, redis_url: str) -> None:
        self.urls = (memcached_addr, redis_url)
        self.made: list[DirectCacheAdapter] = []
        self.keys: list[str] = []

    def __call__(self, **kw: Any) -> DirectCacheAdapter:
        self.made.append(adapter(*self.urls, **kw))
        return self.made[-1]

    async def close(self) -> None:
        for key in self.keys if self.made else ():
            await self.made[0].delete(key)
        for made in self.made:
            await made.close()


@pytest_asyncio.fixture(loop_scope="function")
async def adapters(memcached_addr: str, redis_url: str) -> AsyncIterator[Adapters]:
    made = Adapters(memcached_addr, redis_url)
    yield made
    await made.close()


async def test_a_miss_reads_through_and_writes_every_tier_with_the_one_ttl(
    prefix: str, memcached_addr: str, redis_url: str
) -> None:
    key = ticker_key(prefix)
    origin = Origin()
    direct = adapter(memcached_addr, redis_url, ttl_s=42)
    redis = aioredis.from_url(redis_url)
    try:
        first = await direct.get_or_load(key, origin)
        assert (first.tier, first.value, first.as_of) == ("origin", {"last": 101.0}, origin.as_of)
        again = await direct.get_or_load(key, origin)
        assert (again.tier, again.value, origin.calls) == ("memory", {"last": 101.0}, 1)
        assert memcached_ttl(memcached_addr, key) in (41, 42)
        assert 40_000 < await redis.pttl(key) <= 42_000  # the same TTL in every tier
        assert direct.stats == {"memory": 1, "memcached": 0, "redis": 0, "origin": 1, "miss": 0}
    finally:
        await direct.delete(key)
        await direct.close()
        await redis.aclose()


async def test_redis_is_read_only_when_memcached_misses_and_nothing_is_promoted(
    prefix: str, memcached_addr: str, adapters: Adapters
) -> None:
    key = ticker_key(prefix, "ETH/USDT")
    writer = adapters()
    adapters.keys.append(key)
    await writer.get_or_load(key, Origin())
    hit = await adapters().get(key)  # another process: its own empty L1
    assert hit is not None and hit.tier == "memcached"
    await writer.memcached.delete_many([key])
    hit = await adapters().get(key)
    assert hit is not None and hit.tier == "redis"
    assert memcached_ttl(memcached_addr, key) is None  # no promotion to Memcached


async def test_l1_refill_gets_a_full_ttl_so_served_age_exceeds_it(
    prefix: str, adapters: Adapters
) -> None:
    """The old design's staleness: a copy refilled into L1 lives another whole TTL."""
    key = ticker_key(prefix, "SOL/USDT")
    now = time.time()
    writer, reader = adapters(ttl_s=1.5, l1_entries=0), adapters(ttl_s=1.5)
    adapters.keys.append(key)
    await writer.get_or_load(key, Origin(as_of=int(now * 1000)))
    await asyncio.sleep(1.0)
    assert (await reader.get(key)).tier == "memcached"  # type: ignore[union-attr]
    await asyncio.sleep(1.0)  # gone from Memcached and Redis (1.5 s), still in L1
    assert await writer.get(key) is None
    hit = await reader.get(key)
    assert hit is not None and hit.tier == "memory" and hit.age > 1.5


async def test_a_copy_older_than_max_age_is_a_miss_reloaded_and_written_back(
    prefix: str, adapters: Adapters
) -> None:
    key = ticker_key(prefix, "ADA/USDT")
    direct = adapters()
    adapters.keys.append(key)
    now = int(time.time() * 1000)
    old, fresh = Origin(as_of=now - 30_000), Origin(as_of=now)
    await direct.get_or_load(key, old)
    assert (await direct.get_or_load(key, fresh)).tier == "memory"  # no max_age: served
    hit = await direct.get_or_load(key, fresh, max_age=15)
    assert (hit.tier, hit.as_of, fresh.calls) == ("origin", now, 1)
    assert (await adapters().get(key)).as_of == now  # type: ignore[union-attr]


async def test_a_failing_origin_propagates_and_writes_nothing(
    prefix: str, adapters: Adapters
) -> None:
    key = ticker_key(prefix, "XRP/USDT")
    direct = adapters()

    async def broken() -> tuple[Any, int]:
        raise ConnectionError("origin down")

    with pytest.raises(ConnectionError):
        await direct.get_or_load(key, broken)
    assert await direct.get(key) is None
    assert direct.stats["miss"] == 1 and direct.stats["origin"] == 0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="ttl_s > 0"):
        adapter("127.0.0.1:1", "redis://127.0.0.1:1/0", ttl_s=0)
    with pytest.raises(ValueError, match="memcached:// and a redis://"):
        DirectCacheAdapter.from_urls("redis://127.0.0.1:1/0", "redis://127.0.0.1:1/0")
