"""The freshness contract on the real servers: a normal read never returns a copy past its
fresh TTL; the deepest tier keeps it for a stale window, served only to a reader that
accepts it (``max_stale``, ``stale_if_error``) and flagged ``stale``; L1 never holds one."""

from __future__ import annotations

import asyncio
import math
import random

import pytest
from prometheus_client import REGISTRY, generate_latest

from tests.conftest import StackURLs
from tiers import MultiTierCache, TierLevel, TTLPolicy, Write
from tiers._envelope import now_ms
from tiers._metrics import OUTCOMES, read_summary, summarize_text
from topics import DataType

pytestmark = pytest.mark.integration


def short_policy(stale_s: float = 60.0) -> TTLPolicy:
    """Fresh for ~1 s in every tier (memcached counts whole seconds), then stale_s more."""
    return TTLPolicy(
        base_s={DataType.DEFAULT: (1.0, 1.0, 1.0)},
        clamp_s={level: (0.5, 600.0) for level in TierLevel},
        stale_s=stale_s, jitter=0.0, rng=random.Random(1),
    )  # fmt: skip


def key(prefix: str, name: str = "k") -> str:
    return f"{prefix}:v2:misc:value:1m:{name}"


@pytest.mark.parametrize("deepest", ["redis", "memcached"])
async def test_past_its_fresh_ttl_a_copy_is_served_only_to_who_accepts_it_stale(
    deepest: str, stack_urls: StackURLs, prefix: str
) -> None:
    urls = ["memory://"]
    urls.append(stack_urls.redis_url if deepest == "redis" else stack_urls.memcached_url)
    cache = MultiTierCache.from_urls(
        *urls, ttl_policy=short_policy(), timeout_s=2.0, invalidation_channel=None
    )
    k = key(prefix)
    try:
        await cache.set(k, "v", data_type="default", as_of=now_ms())
        fresh = await cache.get(k, max_stale=60)
        assert fresh is not None and not fresh.stale and fresh.tier == "memory"
        await asyncio.sleep(2.2)  # past the fresh TTL of every tier
        assert await cache.get(k) is None  # a normal read: never past its fresh TTL
        assert await cache.get(k, max_stale=0.1) is None  # more than 0.1 s past it
        stale = await cache.get(k, max_stale=60)
        assert stale is not None and stale.stale and stale.tier == deepest
        assert stale.value == "v" and stale.age > 2.0
        by_origin = await cache.get(k, stale_if_error=True)
        assert by_origin is not None and by_origin.stale
        await cache.drain()
        assert cache.tiers[0].hit(k) is None  # type: ignore[attr-defined]  # L1: never stale
        assert cache.stats()["memory"]["promotions"] == 0
        many = await cache.get_many([k, key(prefix, "absent")], max_stale=60)
        assert [h.stale if h else None for h in many] == [True, None]
        # a new write is fresh again
        await cache.set(k, "new", data_type="default", as_of=now_ms())
        again = await cache.get(k)
        assert again is not None and (again.value, again.stale) == ("new", False)
    finally:
        await cache.close()


async def test_only_the_deepest_tier_keeps_the_stale_window(
    stack_urls: StackURLs, prefix: str
) -> None:
    cache = MultiTierCache.from_urls(
        stack_urls.memcached_url, stack_urls.redis_url, ttl_policy=short_policy(),
        timeout_s=2.0, invalidation_channel=None,
    )  # fmt: skip
    only_l2 = MultiTierCache.from_urls(stack_urls.memcached_url, invalidation_channel=None)
    k = key(prefix)
    try:
        await cache.set(k, "v", data_type="default", as_of=now_ms())
        await asyncio.sleep(2.2)
        assert await only_l2.get(k, max_stale=3600) is None  # memcached's copy expired
        hit = await cache.get(k, max_stale=3600)
        assert hit is not None and hit.tier == "redis" and hit.stale
        await cache.drain()
        assert await only_l2.get(k, max_stale=3600) is None  # and it was not promoted
    finally:
        await cache.close()
        await only_l2.close()


@pytest.mark.parametrize("max_age", [1e308, math.inf, math.nan, 1e12])
async def test_a_huge_max_age_is_no_error(
    max_age: float, stack_urls: StackURLs, prefix: str
) -> None:
    cache = MultiTierCache.from_urls(stack_urls.redis_url, invalidation_channel=None)
    k = key(prefix)
    try:
        await cache.set(k, 1, data_type="default", as_of=now_ms())
        hit = await cache.get(k, max_age=max_age)  # was OverflowError for 1e308 (issue 12)
        assert hit is not None and hit.value == 1
    finally:
        await cache.close()


async def test_read_shares_cover_every_read_and_sum_to_one(
    stack_urls: StackURLs, prefix: str
) -> None:
    before = read_summary()
    cache = MultiTierCache.from_urls(
        "memory://", stack_urls.memcached_url, stack_urls.redis_url,
        ttl_policy=short_policy(), timeout_s=2.0, invalidation_channel=None,
    )  # fmt: skip
    redis_only = MultiTierCache.from_urls(stack_urls.redis_url, invalidation_channel=None)
    in_l1, in_l2, in_l3, gone = (key(prefix, n) for n in ("l1", "l2", "l3", "gone"))
    try:
        await cache.set(gone, "old", data_type="default", as_of=now_ms())
        await asyncio.sleep(2.2)  # "gone" is stale now
        await cache.set_many([Write(k, k, "default", now_ms()) for k in (in_l1, in_l2)])
        await redis_only.set(in_l3, "deep", data_type="default", as_of=now_ms())
        cache.tiers[0].discard(in_l2)  # type: ignore[attr-defined]
        assert (await cache.get(in_l1)).tier == "memory"  # type: ignore[union-attr]
        assert (await cache.get(in_l2)).tier == "memcached"  # type: ignore[union-attr]
        assert (await cache.get(in_l3)).tier == "redis"  # type: ignore[union-attr]
        assert (await cache.get(gone, max_stale=60)).stale  # type: ignore[union-attr]
        assert await cache.get(key(prefix, "never")) is None
        summary = cache.stats()["overall"]
        assert summary["shares"] == {o: 0.2 for o in OUTCOMES}
        assert sum(summary["shares"].values()) == pytest.approx(1.0)
        assert summary["p50_ms"] is not None and summary["p95_ms"] is not None
        assert summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"]
        # the process-wide Prometheus view moved by exactly these reads
        after = read_summary()
        assert after["reads"] - before["reads"] == 5
    finally:
        await cache.close()
        await redis_only.close()
    text = generate_latest(REGISTRY).decode()
    assert 'warmfleet_cache_reads_total{outcome="stale"}' in text
    assert "warmfleet_cache_read_seconds_bucket" in text
    assert "warmfleet_cache_read_errors_total" in text
    parsed = summarize_text(text)
    assert sum(v for v in parsed["shares"].values() if v) == pytest.approx(1.0)
    assert parsed["p95_ms"] is not None
