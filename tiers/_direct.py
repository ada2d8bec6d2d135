"""The old design, as the report describes the production system it replaced: the
``DirectCacheAdapter``.

- an in-process L1 (a plain LRU dict), then Memcached as the primary, Redis read only when
  Memcached misses — no promotion between the shared tiers;
- ONE TTL (the report's single ``exptime``, 300 s) for every tier and every data type,
  counted from when a copy is stored, so a copy refilled into L1 from Memcached lives
  another full TTL: served ages grow past the TTL (the old design served old prices);
- no warming: a miss reads through to the origin (``get_or_load``) and writes the result
  back to every tier; concurrent misses on one key each go to the origin (no
  single-flight), and there is no breaker, no deadline and no batching.

Kept as the baseline of the A/B experiment (``warmfleet ab``) and the benchmarks. Same
envelope and the same ``get``/``set`` signatures as ``MultiTierCache``, so a benchmark swaps
one for the other. Do not use it for anything else.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from tiers._envelope import Envelope, as_of_ms, encode_body, now_ms
from tiers._hit import Hit
from tiers._keys import check_key
from tiers._memcached import MemcachedTier
from tiers._protocol import StoreItem
from tiers._redis import RedisTier

ONE_TTL_S = 300.0
#: the in-process L1's size (entries, LRU)
L1_ENTRIES = 10_000

#: what ``get_or_load`` calls on a miss: the value and its exchange time (epoch ms)
Loader = Callable[[], Awaitable[tuple[Any, int]]]


class DirectCacheAdapter:
    """L1 dict -> Memcached -> Redis -> origin, one TTL everywhere (see the module doc).

    ``stats`` counts where reads were answered: ``memory``, ``memcached``, ``redis``,
    ``origin`` (a ``get_or_load`` miss) and ``miss`` (a plain ``get`` that found nothing).
    """

    def __init__(
        self,
        memcached: MemcachedTier,
        redis: RedisTier,
        ttl_s: float = ONE_TTL_S,
        *,
        l1_entries: int = L1_ENTRIES,
    ) -> None:
        if not ttl_s > 0 or l1_entries < 0:
            raise ValueError(
                f"DirectCacheAdapter needs ttl_s > 0 and l1_entries >= 0, got ttl_s={ttl_s}, "
                f"l1_entries={l1_entries}"
            )
        self.memcached = memcached
        self.redis = redis
        self.ttl_s = ttl_s
        self.l1_entries = l1_entries
        # key -> (monotonic deadline, Hit); the old L1 knew nothing but "TTL from now"
        self._l1: OrderedDict[str, tuple[float, Hit]] = OrderedDict()
        self.stats: dict[str, int] = dict.fromkeys(
            ("memory", "memcached", "redis", "origin", "miss"), 0
        )

    @classmethod
    def from_urls(
        cls, memcached_url: str, redis_url: str, *, ttl_s: float = ONE_TTL_S, **options: int
    ) -> DirectCacheAdapter:
        """The two tiers from their URLs; ``ttl_s`` and ``l1_entries`` as the class takes."""
        from tiers._urls import tier_from_url

        memcached, redis = tier_from_url(memcached_url), tier_from_url(redis_url)
        if not isinstance(memcached, MemcachedTier) or not isinstance(redis, RedisTier):
            raise ValueError("DirectCacheAdapter needs a memcached:// and a redis:// URL")
        return cls(memcached, redis, ttl_s, **options)

    # -- reads ------------------------------------------------------------------------------

    def _l1_get(self, key: str) -> Hit | None:
        entry = self._l1.get(key)
        if entry is None:
            return None
        deadline, hit = entry
        if time.monotonic() >= deadline:
            del self._l1[key]
            return None
        self._l1.move_to_end(key)
        return hit

    def _l1_put(self, key: str, env: Envelope) -> None:
        if self.l1_entries == 0:
            return
        hit = Hit(
            env.value, env.as_of, None, "memory", env.written_at, env.source, env.schema,
            env.expires_at,
        )  # fmt: skip
        self._l1[key] = (time.monotonic() + self.ttl_s, hit)
        self._l1.move_to_end(key)
        while len(self._l1) > self.l1_entries:
            self._l1.popitem(last=False)

    async def _lookup(self, key: str) -> Hit | None:
        hit = self._l1_get(key)
        if hit is not None:
            self.stats["memory"] += 1
            return hit
        for tier in (self.memcached, self.redis):
            (env,) = await tier.get_many([key])
            if env is not None:
                self.stats[tier.name] += 1
                self._l1_put(key, env)  # a fresh full TTL in L1, whatever is left below
                return Hit(
                    env.value, env.as_of, None, tier.name, env.written_at, env.source,
                    env.schema, env.expires_at,
                )  # fmt: skip
        return None

    async def get(self, key: str, *, max_age: float | None = None) -> Hit | None:
        check_key(key)
        hit = await self._lookup(key)
        if hit is None:
            self.stats["miss"] += 1
            return None
        if max_age is not None and hit.age > max_age:
            return None
        return hit

    async def get_or_load(self, key: str, load: Loader, *, max_age: float | None = None) -> Hit:
        """The read path of the old design: the tiers, else ``load()`` from the origin and
        the result written back to every tier with the one TTL. A copy older than
        ``max_age`` seconds counts as a miss. Loader errors propagate."""
        check_key(key)
        hit = await self._lookup(key)
        if hit is not None and (max_age is None or hit.age <= max_age):
            return hit
        value, as_of = await load()
        self.stats["origin"] += 1
        written = now_ms()
        body = encode_body(key, value, as_of=as_of_ms(as_of), written_at=written, source="direct")
        expires = written + int(self.ttl_s * 1000)
        await self._write(StoreItem(key, body, self.ttl_s, expires))
        self._l1_put(key, Envelope(value, as_of_ms(as_of), written, "direct", "", expires))
        return Hit(value, as_of_ms(as_of), None, "origin", written, "direct", "", expires)

    # -- writes -----------------------------------------------------------------------------

    async def _write(self, item: StoreItem) -> None:
        # one after the other, as the old adapter did: Memcached first, then Redis
        await self.memcached.set_many([item])
        await self.redis.set_many([item])

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
        """Writes the shared tiers with the one TTL (``data_type``, ``volatility`` and
        ``warm_interval`` are accepted for signature parity and ignored, as the old design
        did). This process's L1 fills on its next read."""
        check_key(key)
        now = now_ms()
        body = encode_body(key, value, as_of=as_of_ms(as_of), written_at=now, source="direct")
        await self._write(StoreItem(key, body, self.ttl_s, now + int(self.ttl_s * 1000)))
        self._l1.pop(key, None)
        return {"memcached": self.ttl_s, "redis": self.ttl_s}

    async def delete(self, key: str) -> None:
        check_key(key)
        self._l1.pop(key, None)
        await self.memcached.delete_many([key])
        await self.redis.delete_many([key])

    async def close(self) -> None:
        await self.memcached.close()
        await self.redis.close()
