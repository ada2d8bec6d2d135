"""L3: Redis through ``redis.asyncio`` (hiredis parser): single node, TLS, or Cluster.

Monotonic writes are atomic: one Lua script per key compares the stored ``as_of`` (read
from the envelope head without decoding) and ``SET ... PX`` only when it is not newer.
A batch goes out as ONE pipeline of ``EVALSHA``; a server that lost its script cache
(restart, failover) gets ``SCRIPT LOAD`` and the refused entries are sent again.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import structlog
from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tiers._envelope import Envelope, EnvelopeDecoder
from tiers._errors import CacheUnavailable
from tiers._protocol import StoreItem
from tiers._ttl import TierLevel

log = structlog.get_logger(__name__)

SET_IF_NEWER = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local stored = tonumber(string.match(cur, '^{"a":(%d+)'))
  if stored and stored > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""
SET_IF_NEWER_SHA = hashlib.sha1(SET_IF_NEWER.encode(), usedforsecurity=False).hexdigest()

DRIVER_ERRORS: tuple[type[BaseException], ...] = (redis_errors.RedisError, OSError, EOFError)


class RedisTier(EnvelopeDecoder):
    name = "redis"
    level = TierLevel.L3

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        cluster: bool = False,
        connect_timeout: float = 1.0,
        max_connections: int = 64,
    ) -> None:
        self.url = url
        self.cluster = cluster
        self.corrupt = 0
        self._subscriber: Redis | None = None
        no_retry = Retry(NoBackoff(), 0)  # the cache's breaker decides about retrying
        self.client: Redis | RedisCluster
        if cluster:
            self.client = RedisCluster.from_url(
                url, socket_connect_timeout=connect_timeout, retry=no_retry
            )
        else:
            # a blocking pool: a burst beyond max_connections waits (bounded by the cache's
            # timeouts) instead of failing with "Too many connections"
            pool = BlockingConnectionPool.from_url(
                url,
                socket_connect_timeout=connect_timeout,
                retry=no_retry,
                max_connections=max_connections,
                timeout=None,
            )
            self.client = Redis.from_pool(pool)

    def __repr__(self) -> str:
        return f"RedisTier(cluster={self.cluster})"  # the URL may hold a password

    async def get_many(self, keys: Sequence[str]) -> list[Envelope | None]:
        try:
            if isinstance(self.client, RedisCluster):
                raw = await self.client.mget_nonatomic(list(keys))
            else:
                raw = await self.client.mget(list(keys))
        except DRIVER_ERRORS as exc:
            raise CacheUnavailable(self.name, "get", type(exc).__name__) from exc
        return [None if r is None else self._decode(k, r) for k, r in zip(keys, raw, strict=True)]

    async def set_many(self, items: Sequence[StoreItem]) -> list[bool]:
        out = [False] * len(items)
        pending = list(range(len(items)))
        try:
            for _attempt in range(2):
                results = await self._eval_batch(items, pending)
                retry = []
                for p, result in zip(pending, results, strict=True):
                    if isinstance(result, redis_errors.NoScriptError):
                        retry.append(p)
                    elif isinstance(result, redis_errors.ResponseError):
                        # e.g. WRONGTYPE: the key is someone else's; count, never crash
                        log.warning("redis_set_refused", key=items[p].key, error=str(result))
                    elif isinstance(result, BaseException):
                        raise result
                    else:
                        out[p] = bool(result)
                if not retry:
                    break
                await self.client.script_load(SET_IF_NEWER)
                pending = retry
        except DRIVER_ERRORS as exc:
            raise CacheUnavailable(self.name, "set", type(exc).__name__) from exc
        return out

    async def _eval_batch(self, items: Sequence[StoreItem], positions: list[int]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for p in positions:
            item = items[p]
            # execute_command: redis-py's cluster pipeline blocks the evalsha() helper but
            # routes a raw EVALSHA by its key
            pipe.execute_command(
                "EVALSHA",
                SET_IF_NEWER_SHA,
                1,
                item.key,
                item.body.for_tier(item.expires_at),
                item.body.as_of,
                max(1, math.ceil(item.ttl_s * 1000)),
            )
        return list(await pipe.execute(raise_on_error=False))

    async def delete_many(self, keys: Sequence[str]) -> None:
        try:
            if isinstance(self.client, RedisCluster):
                pipe = self.client.pipeline()
                for key in keys:
                    pipe.delete(key)
                await pipe.execute()
            else:
                await self.client.delete(*keys)
        except DRIVER_ERRORS as exc:
            raise CacheUnavailable(self.name, "delete", type(exc).__name__) from exc

    async def publish(self, channel: str, message: bytes) -> None:
        try:
            await self.client.publish(channel, message)
        except DRIVER_ERRORS as exc:
            raise CacheUnavailable(self.name, "publish", type(exc).__name__) from exc

    def pubsub(self) -> PubSub:
        """A pub/sub connection. In a cluster, PUBLISH reaches every node, so one plain
        connection to a seed node hears all channels (redis-py's cluster pub/sub does not
        cope with our reconnect loop)."""
        if isinstance(self.client, RedisCluster):
            if self._subscriber is None:
                self._subscriber = Redis.from_url(self.url, retry=Retry(NoBackoff(), 0))
            return self._subscriber.pubsub()
        return self.client.pubsub()

    async def pttl_ms(self, key: str) -> int:
        """Milliseconds left for ``key`` (-2 absent, -1 no expiry); for tests and tools."""
        try:
            return int(await self.client.pttl(key))
        except DRIVER_ERRORS as exc:
            raise CacheUnavailable(self.name, "pttl", type(exc).__name__) from exc

    async def close(self) -> None:
        try:
            if self._subscriber is not None:
                await self._subscriber.aclose()
            await self.client.aclose()
        except DRIVER_ERRORS:
            log.debug("redis_close_failed")
