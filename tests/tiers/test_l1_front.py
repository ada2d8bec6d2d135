"""``MultiTierCache.get`` with an L1 in front (``MemoryTier.front``): the L1 answers hits
itself and hands everything else, options and all, to the read path below; a cache without
an L1 keeps the method. Real Redis below L1."""

from __future__ import annotations

import time

import pytest

from tests.conftest import StackURLs
from tiers import MemoryTier, MultiTierCache, RedisTier


def _key(prefix: str, name: str) -> str:
    return f"{prefix}:v2:market:ticker:15s:binance:{name}/USDT"


def _now_ms() -> int:
    return int(time.time() * 1000)


async def test_an_l1_hit_is_answered_by_the_front_and_counted(
    stack_urls: StackURLs, prefix: str
) -> None:
    cache = MultiTierCache([MemoryTier(100), RedisTier(stack_urls.redis_url)])
    try:
        key = _key(prefix, "A")
        await cache.set(key, {"last": 1.0}, data_type="tickers", as_of=_now_ms())
        first = await cache.get(key)
        assert first is not None and first.tier == "memory" and first.value == {"last": 1.0}
        hits = cache.stats()["memory"]["hits"]
        again = await cache.get(key, max_age=60)  # by keyword, as every caller passes it
        assert again is first  # L1 keeps one Hit per entry and answers it as is
        assert cache.stats()["memory"]["hits"] == hits + 1
        assert cache.stats()["overall"]["shares"]["l1"] == 1.0
    finally:
        await cache.close()


async def test_what_l1_cannot_answer_goes_below_with_its_options(
    stack_urls: StackURLs, prefix: str
) -> None:
    l1 = MemoryTier(100)
    cache = MultiTierCache([l1, RedisTier(stack_urls.redis_url)])
    try:
        key = _key(prefix, "B")
        await cache.set(key, {"last": 2.0}, data_type="tickers", as_of=_now_ms() - 5_000)
        # 5 s old: L1 refuses it for max_age=1, and so does Redis below (the option reached it)
        assert await cache.get(key, max_age=1) is None
        assert cache.stats()["memory"]["misses"] == 1
        l1.clear()  # not in L1: Redis answers, and the copy is promoted into L1
        below = await cache.get(key, max_age=60)
        assert below is not None and below.tier == "redis" and below.value == {"last": 2.0}
        await cache.drain()
        promoted = await cache.get(key)
        assert promoted is not None and promoted.tier == "memory"
        with pytest.raises(ValueError):
            await cache.get("")  # a bad key is still refused on the way below
    finally:
        await cache.close()


async def test_a_cache_without_l1_reads_through_the_method(
    stack_urls: StackURLs, prefix: str
) -> None:
    cache = MultiTierCache([RedisTier(stack_urls.redis_url)])
    try:
        assert "get" not in vars(cache)  # no front to install
        key = _key(prefix, "C")
        await cache.set(key, {"last": 3.0}, data_type="tickers", as_of=_now_ms() - 5_000)
        assert await cache.get(key, max_age=1) is None
        hit = await cache.get(key, max_age=60, max_stale=None)
        assert hit is not None and hit.tier == "redis" and not hit.stale
    finally:
        await cache.close()


async def test_each_cache_has_its_own_front(stack_urls: StackURLs, prefix: str) -> None:
    one = MultiTierCache([MemoryTier(10)])
    two = MultiTierCache([MemoryTier(10)])
    try:
        key = _key(prefix, "D")
        await one.set(key, 1, data_type="tickers", as_of=_now_ms())
        assert (await one.get(key)) is not None
        assert await two.get(key) is None  # the second cache's L1 never saw the write
    finally:
        await one.close()
        await two.close()
