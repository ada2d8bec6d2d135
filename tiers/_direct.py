"""The old behaviour, kept as the benchmarks' baseline: Memcached primary, Redis fallback,
one TTL (300 s) everywhere, no L1, no promotion, no breaker, no batching, no timeouts.

Same envelope and the same ``get``/``set`` signatures as ``MultiTierCache``, so a benchmark
swaps one for the other. Do not use it for anything else.
"""

from __future__ import annotations

import time
from typing import Any

from tiers._envelope import as_of_ms, encode_body, now_ms
from tiers._hit import Hit
from tiers._keys import check_key
from tiers._memcached import MemcachedTier
from tiers._protocol import StoreItem
from tiers._redis import RedisTier

ONE_TTL_S = 300.0


class DirectCacheAdapter:
    def __init__(self, memcached: MemcachedTier, redis: RedisTier, ttl_s: float = ONE_TTL_S):
        self.memcached = memcached
        self.redis = redis
        self.ttl_s = ttl_s

    @classmethod
    def from_urls(cls, memcached_url: str, redis_url: str) -> DirectCacheAdapter:
        from tiers._urls import tier_from_url

        memcached, redis = tier_from_url(memcached_url), tier_from_url(redis_url)
        if not isinstance(memcached, MemcachedTier) or not isinstance(redis, RedisTier):
            raise ValueError("DirectCacheAdapter needs a memcached:// and a redis:// URL")
        return cls(memcached, redis)

    async def get(self, key: str, *, max_age: float | None = None) -> Hit | None:
        check_key(key)
        for tier in (self.memcached, self.redis):
            (env,) = await tier.get_many([key])
            if env is not None:
                age = time.time() - env.as_of / 1000.0
                if max_age is not None and age > max_age:
                    return None
                return Hit(
                    env.value, env.as_of, age, tier.name, env.written_at, env.source, env.schema,
                    env.expires_at,
                )  # fmt: skip
        return None

    async def set(
        self,
        key: str,
        value: Any,
        *,
        data_type: str = "default",
        as_of: int,
        volatility: float | None = None,
        warm_interval: float | None = None,
    ) -> dict[str, float]:
        check_key(key)
        now = now_ms()
        body = encode_body(key, value, as_of=as_of_ms(as_of), written_at=now, source="direct")
        item = StoreItem(key, body, self.ttl_s, now + int(self.ttl_s * 1000))
        await self.memcached.set_many([item])
        await self.redis.set_many([item])
        return {"memcached": self.ttl_s, "redis": self.ttl_s}

    async def delete(self, key: str) -> None:
        check_key(key)
        await self.memcached.delete_many([key])
        await self.redis.delete_many([key])

    async def close(self) -> None:
        await self.memcached.close()
        await self.redis.close()
