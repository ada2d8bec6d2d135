"""The demand path's fleet-wide state in Redis: leases, token buckets, listed markets.

* **Leases** (Facebook memcache's, per (exchange, data type, symbol)): ``SET NX PX`` with a
  random token; whoever gets it publishes the one demand job, everyone else waits for the
  write. Released (compare-and-delete) once the value is seen, else it simply expires, so a
  failing exchange gets at most one demand job per key per lease.
* **Token buckets** (one Lua script, Redis' own clock): the pollers take one token per
  origin request from ``bucket:{exchange}``, reserving ahead (the wait is returned, the
  bucket may go below zero) but never further than the caller can wait; the readers take
  from ``admit:{exchange}`` before publishing a demand job, without waiting.
* **Listed markets**: a set per exchange, replaced whole by the pollers when they load
  markets, read (and cached for ``markets_cache_s``) by the readers.

Every Redis error is translated into ``DemandUnavailable``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from demand import _names as names
from demand._config import DemandUnavailable

T = TypeVar("T")

# KEYS[1] bucket; ARGV rate (tokens/s), burst, cost, max_wait_ms. Returns {granted, wait_ms}:
# granted -> the tokens are taken and the caller may go after wait_ms; refused -> nothing
# taken, wait_ms is when it could be granted.
_BUCKET = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local cost, max_wait = tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(state[1]), tonumber(state[2])
if tokens == nil or ts == nil then tokens, ts = burst, now end
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate / 1000) end
local wait = 0
if tokens < cost then wait = math.ceil((cost - tokens) * 1000 / rate) end
if wait > max_wait then return {0, wait} end
tokens = tokens - cost
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(math.max(now, ts)))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 60000)
return {1, wait}
"""

# compare-and-delete: a lease is released only by its holder
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class Grant:
    granted: bool
    wait_s: float  # granted: go after this long; refused: it could be granted after this


def connect(url: str) -> Any:
    """A redis.asyncio client for a ``redis://``, ``rediss://`` or ``redis+cluster://`` URL."""
    if "+cluster" in url.split("://", 1)[0]:
        from redis.asyncio.cluster import RedisCluster

        return RedisCluster.from_url(url.replace("+cluster", "", 1))
    # bounded: a burst of cold reads queues for a connection instead of opening hundreds
    # (opening one costs more round trips than the lease it would carry)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=32, timeout=2.0, socket_timeout=1.0, socket_connect_timeout=1.0
    )
    return aioredis.Redis(connection_pool=pool)


class FleetState:
    """Leases, buckets and listed markets for one key prefix (``scope``)."""

    def __init__(self, client: Any, scope: str, *, markets_cache_s: float = 10.0) -> None:
        self.client, self.scope = client, scope
        self.markets_cache_s = markets_cache_s
        self._bucket = client.register_script(_BUCKET)
        self._release = client.register_script(_RELEASE)
        self._markets: dict[str, tuple[float, frozenset[str]]] = {}
        self._rates: dict[str, tuple[float, float | None]] = {}
        self._reading: dict[str, asyncio.Future[Any]] = {}

    @classmethod
    def from_url(cls, url: str, scope: str, **options: Any) -> FleetState:
        return cls(connect(url), scope, **options)

    async def close(self) -> None:
        pool = getattr(self.client, "connection_pool", None)
        await self.client.aclose()
        if pool is not None:  # a pool handed to the client is not closed with it
            await pool.disconnect()

    async def _redis(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except (RedisError, OSError) as exc:
            raise DemandUnavailable(f"{what}: Redis: {type(exc).__name__}: {exc}") from exc

    # ---- leases ---------------------------------------------------------------------

    async def lease(self, exchange: str, data_type: str, symbol: str, ttl_ms: int) -> str | None:
        """The lease's token if this caller got it, None if someone holds it."""
        token = secrets.token_hex(8)
        key = names.lease(self.scope, exchange, data_type, symbol)
        got = await self._redis("lease", lambda: self.client.set(key, token, nx=True, px=ttl_ms))
        return token if got else None

    async def release(self, exchange: str, data_type: str, symbol: str, token: str) -> bool:
        key = names.lease(self.scope, exchange, data_type, symbol)
        done = await self._redis("release", lambda: self._release(keys=[key], args=[token]))
        return bool(done)

    # ---- buckets --------------------------------------------------------------------

    async def take(
        self, bucket: str, rate: float, burst: float, *, cost: float = 1.0, max_wait_s: float = 0.0
    ) -> Grant:
        args = [repr(float(rate)), repr(float(burst)), repr(float(cost)), int(max_wait_s * 1000)]
        granted, wait_ms = await self._redis(
            "bucket", lambda: self._bucket(keys=[bucket], args=args)
        )
        return Grant(bool(granted), int(wait_ms) / 1000.0)

    async def take_origin(self, exchange: str, rate: float, *, max_wait_s: float) -> Grant:
        """One origin request's token (the pollers); burst: one second's worth."""
        return await self.take(
            names.budget(self.scope, exchange), rate, max(1.0, rate), max_wait_s=max_wait_s
        )

    async def admit(self, exchange: str, rate: float, cost: float = 1.0) -> Grant:
        """Room for a demand job now (the readers): never waits."""
        return await self.take(names.admission(self.scope, exchange), rate, max(1.0, rate),
                               cost=cost)  # fmt: skip

    # ---- budgets and listed markets -------------------------------------------------

    async def publish_markets(
        self, exchange: str, symbols: Iterable[str], requests_per_s: float, ttl_s: int = 86_400
    ) -> int:
        """Replace the exchange's listed set (atomically: a temporary key renamed over it)."""
        listed = sorted(set(symbols))
        key = names.markets(self.scope, exchange)
        temp = f"{key}:new:{secrets.token_hex(4)}"

        async def run() -> None:
            # no MULTI: on a Redis Cluster the rate key lives in another slot. RENAME alone
            # is what makes the swap atomic (readers see the old set or the new, never half);
            # the temporary key expires by itself if this stops half way.
            if listed:
                await self.client.sadd(temp, *listed)
                await self.client.expire(temp, 60)
                await self.client.rename(temp, key)
                await self.client.expire(key, ttl_s)
            else:
                await self.client.delete(key)
            await self.client.set(
                names.rate(self.scope, exchange), repr(float(requests_per_s)), ex=ttl_s
            )

        await self._redis("publish markets", run)
        self._markets.pop(exchange, None)
        return len(listed)

    async def listed(self, exchange: str, *, fresh: bool = False) -> frozenset[str]:
        """The exchange's listed symbols (empty: no poller has published any); ``fresh``
        reads Redis now instead of the copy kept for ``markets_cache_s``."""
        now = time.monotonic()
        cached = self._markets.get(exchange)
        if not fresh and cached is not None and now - cached[0] < self.markets_cache_s:
            return cached[1]
        key = names.markets(self.scope, exchange)
        members = await self._once(key, lambda: self.client.smembers(key))
        found = frozenset(m.decode() if isinstance(m, bytes) else str(m) for m in members)
        self._markets[exchange] = (now, found)
        return found

    async def requests_per_s(self, exchange: str) -> float | None:
        """The budget the pollers published for the exchange (cached like the markets)."""
        now = time.monotonic()
        cached = self._rates.get(exchange)
        if cached is not None and now - cached[0] < self.markets_cache_s:
            return cached[1]
        key = names.rate(self.scope, exchange)
        raw = await self._once(key, lambda: self.client.get(key))
        try:
            rate = float(raw) if raw is not None else None
        except ValueError:
            rate = None
        self._rates[exchange] = (now, rate)
        return rate

    async def _once(self, key: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """One read of ``key`` in flight at a time: a burst of cold reads that all find the
        cached copy out of date share one round trip (2,000 symbols each, for the markets)."""
        shared = self._reading.get(key)
        if shared is None:
            shared = asyncio.ensure_future(self._redis(key, call))
            self._reading[key] = shared
            shared.add_done_callback(lambda _f: self._reading.pop(key, None))
        return await asyncio.shield(shared)
