"""The TTL policy's access weight from measured heat: reads counted by a reader reach the
fleet's hot set in Redis, a writer's view of it weighs each key it writes. Hot keys live
longer in every tier; a key nobody reads keeps weight 1."""

from __future__ import annotations

import random
from typing import Any

import pytest
import redis.asyncio as aioredis

from tiers import HeatRecorder, HeatView, MultiTierCache, TTLPolicy, Write
from topics import key_for

pytestmark = pytest.mark.redis


async def test_hot_keys_get_longer_ttls_in_every_tier_and_unread_keys_weight_1(
    redis_url: str, memcached_addr: str, prefix: str
) -> None:
    hot, warm, unread = (key_for("tickers", "binance", s, prefix=prefix)
                         for s in ("BTC/USDT", "ETH/USDT", "XRP/USDT"))  # fmt: skip
    reader = HeatRecorder(redis_url, prefix=prefix)
    for _ in range(40):
        reader.touch(hot)
    for _ in range(10):
        reader.touch(warm)
    await reader.close()
    view = HeatView(redis_url, prefix=prefix)
    assert await view.refresh()
    cache = MultiTierCache.from_urls(
        "memory://?max_entries=100", f"memcached://{memcached_addr}", redis_url,
        ttl_policy=TTLPolicy(jitter=0.0, rng=random.Random(1), heat=view),
        invalidation_channel=None,
    )  # fmt: skip
    client = aioredis.Redis.from_url(redis_url)
    try:
        written = await cache.set_many(
            [Write(k, {"last": 1.0}, "tickers", 1_000) for k in (hot, warm, unread)]
        )
        by_key = dict(zip((hot, warm, unread), written, strict=True))
        # tickers: 15 / 30 / 120 s at weight 1; the hottest key 1.5x, ETH 1 + 0.5 * 10/40
        assert by_key[unread] == {"memory": 15.0, "memcached": 30.0, "redis": 120.0}
        assert by_key[hot] == {"memory": 22.5, "memcached": 45.0, "redis": 180.0}
        assert by_key[warm]["redis"] == pytest.approx(135.0, rel=0.01)
        # what Redis really keeps (fresh TTL + the stale window) differs by the same 60 s
        kept_hot, kept_unread = await client.pttl(hot), await client.pttl(unread)
        assert (kept_hot - kept_unread) / 1000 == pytest.approx(60.0, abs=1.0)
    finally:
        await client.aclose()
        await cache.close()
        await view.close()


async def test_a_policy_without_heat_weighs_every_key_1(prefix: str) -> None:
    policy = TTLPolicy(jitter=0.0)
    keys = [key_for("tickers", "binance", "BTC/USDT", prefix=prefix)]
    assert policy.ttls_many([("tickers", None)], keys=keys) == [[15.0, 30.0, 120.0]]


class Fixed:
    def __init__(self, weights: dict[str, float]) -> None:
        self.weights = weights

    def weight(self, key: str) -> float:
        return self.weights.get(key, 1.0)


def test_measured_weights_are_clamped_and_a_nan_changes_nothing() -> None:
    policy = TTLPolicy(jitter=0.0, heat=Fixed({"a": 100.0, "b": float("nan"), "c": 0.0}))
    rows = policy.ttls_many([("tickers", None)] * 3, keys=["a", "b", "c"])
    assert rows[0][0] == 60.0  # 15 * 4 (the 4x ceiling), within L1's 60 s clamp
    assert rows[1] == [15.0, 30.0, 120.0]
    assert rows[2][0] == 3.75  # 15 * 0.25 (the floor)
    with pytest.raises(ValueError, match="one key per write"):
        policy.ttls_many([("tickers", None)] * 2, keys=["a"])


async def test_the_agents_cache_weighs_what_it_writes_by_the_fleets_heat(
    stack_urls: Any, prefix: str
) -> None:
    import faust

    from workers.agents import Runtime
    from workers.settings import Settings

    settings = Settings(
        kafka_servers=(stack_urls.kafka_bootstrap,),
        redis_url=stack_urls.redis_url,
        memcached_servers=(stack_urls.memcached_addr,),
        key_prefix=prefix,
    )
    rt = Runtime(faust.App(f"{prefix}-agents", broker=f"kafka://{stack_urls.kafka_bootstrap}"),
                 settings)  # fmt: skip
    hot, unread = (rt.key("tickers", "binance", s) for s in ("BTC/USDT", "XRP/USDT"))
    reader = HeatRecorder(stack_urls.redis_url, prefix=prefix)
    for _ in range(5):
        reader.touch(hot)
    await reader.close()
    try:
        assert rt.cache.policy.heat is rt.heat
        assert await rt.heat.refresh()
        written = await rt.cache.set_many(
            [Write(k, {"last": 1.0}, "tickers", 1_000) for k in (hot, unread)], warm_interval=15
        )
        # memcached's 30 s at weight 1.5 and 1, each +-10 % jitter: 40.5..49.5 against 27..33
        assert written[0]["memcached"] >= 40.5 - 1e-9 and written[1]["memcached"] <= 33 + 1e-9
    finally:
        await rt.close()
