"""The tiered cache: L1 in-process memory, L2 Memcached, L3 Redis.

cache = MultiTierCache.from_urls(
    "memory://?max_entries=50000", "memcached://127.0.0.1:11211", "redis://127.0.0.1:6379/0"
)
await cache.set(key, value, data_type="tickers", as_of=ts_ms, volatility=0.012)
hit = await cache.get(key, max_age=30)   # Hit(value, as_of, age, tier, stale) or None
hit = await cache.get(key, max_stale=300)  # also a copy up to 300 s past its fresh TTL
hit = await cache.get(key, stale_if_error=True)  # origin failing: the last good copy, flagged

heat = HeatRecorder(redis_url, prefix="virt"); heat.touch(key)   # a reader counts its reads
view = HeatView(redis_url, prefix="virt"); TTLPolicy(heat=view)  # the fleet's hot set

Freshness, the invalidation bus and the read metrics: docs/tiers.md; the hot set:
docs/clock.md.
"""

from __future__ import annotations

from tiers._breaker import BreakerState, CircuitBreaker
from tiers._bus import Bus
from tiers._direct import DirectCacheAdapter
from tiers._envelope import DEFAULT_MAX_BYTES, Envelope, decode, encode
from tiers._errors import (
    CacheError,
    CacheUnavailable,
    CorruptEntry,
    UnencodableValue,
    ValueTooLarge,
)
from tiers._hashring import HashRing
from tiers._hit import Hit, Write
from tiers._hotset import HeatRecorder, HeatView, HotSetOptions
from tiers._keys import check_key
from tiers._memcached import MemcachedTier
from tiers._memory import MemoryTier
from tiers._multi import MultiTierCache
from tiers._protocol import StoreItem, Tier
from tiers._redis import RedisTier
from tiers._redis_bus import RedisBus
from tiers._ttl import LEVELS, TierLevel, TTLPolicy
from tiers._urls import tier_from_url

__all__ = [
    "DEFAULT_MAX_BYTES",
    "LEVELS",
    "BreakerState",
    "Bus",
    "CacheError",
    "CacheUnavailable",
    "CircuitBreaker",
    "CorruptEntry",
    "DirectCacheAdapter",
    "Envelope",
    "HashRing",
    "HeatRecorder",
    "HeatView",
    "Hit",
    "HotSetOptions",
    "MemcachedTier",
    "MemoryTier",
    "MultiTierCache",
    "RedisBus",
    "RedisTier",
    "StoreItem",
    "TTLPolicy",
    "Tier",
    "TierLevel",
    "UnencodableValue",
    "ValueTooLarge",
    "Write",
    "check_key",
    "decode",
    "encode",
    "tier_from_url",
]
