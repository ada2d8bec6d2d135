"""What the reader tests share: a TTL policy fresh for ~1 s, the reader's three-tier cache,
an HTTP GET of its JSON."""

from __future__ import annotations

import random
import time
from typing import Any

import aiohttp

from tiers import MultiTierCache, TierLevel, TTLPolicy
from topics import DataType


def now_ms() -> int:
    return int(time.time() * 1000)


async def get(base: str, path: str, **headers: str) -> tuple[int, Any, Any]:
    """GET ``base + path``: (status, the JSON body, the headers)."""
    async with aiohttp.ClientSession() as session:
        async with session.get(base + path, headers=headers) as resp:
            return resp.status, await resp.json(), resp.headers


def short_policy(stale_s: float = 120.0) -> TTLPolicy:
    """Fresh for ~1 s in every tier (memcached counts whole seconds), then stale_s more."""
    return TTLPolicy(
        base_s={dt: (1.0, 1.0, 1.0) for dt in DataType},
        clamp_s={level: (0.5, 600.0) for level in TierLevel},
        stale_s=stale_s, jitter=0.0, rng=random.Random(1),
    )  # fmt: skip


def reader_cache(stack_urls: Any, policy: TTLPolicy | None = None) -> MultiTierCache:
    """L1 memory, L2 the stack's Memcached, L3 its Redis (with ``policy``, if given)."""
    return MultiTierCache.from_urls(
        "memory://?max_entries=1000", stack_urls.memcached_url, stack_urls.redis_url,
        ttl_policy=policy, timeout_s=2.0,
    )  # fmt: skip
