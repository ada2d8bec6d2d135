"""L3: Redis through ``redis.asyncio`` (hiredis parser): single node, TLS, or Cluster.

Monotonic writes are atomic: a Lua script compares each key's stored ``as_of`` (read from
the envelope head without decoding) and ``SET ... PX`` only when it is not newer. One
``EVALSHA`` carries up to ``max_keys_per_script`` keys (all in one hash slot on a Cluster)
and answers one result per key: per-key ``EVALSHA`` cost a big batch more in redis-py's
command packing than the server spent running it. The chunks of a batch go out as ONE
pipeline; a server that lost its script cache (restart, failover, ``SCRIPT FLUSH``) gets
``SCRIPT LOAD`` and the refused chunks are sent again.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot

from tiers._envelope import Envelope, EnvelopeDecoder, write_horizon
from tiers._errors import CacheUnavailable
from tiers._protocol import StoreItem
from tiers._ttl import TierLevel
from topics.settings import check, minimum

if TYPE_CHECKING:
    from tiers._redis_bus import RedisBus

log = structlog.get_logger(__name__)
T = TypeVar("T")

# KEYS[i] gets ARGV[3i-2] (envelope) with PX ARGV[3i] unless it holds an as_of newer than
# ARGV[3i-1] and not beyond the write horizon (the last ARGV: a stored as_of from the future
# is poison, never a reason to refuse). Per key: 1 stored, 0 kept a newer value, or the error
# text (e.g. WRONGTYPE: the key is someone else's) — pcall, so one bad key neither aborts the
# keys after it nor leaves the caller unsure which ones were written.
SET_IF_NEWER = """
local out = {}
local horizon = tonumber(ARGV[#ARGV])
for i, key in ipairs(KEYS) do
  local j = 3 * i
  local result = 1
  local cur = redis.pcall('GET', key)
  if type(cur) == 'table' and cur.err then
    result = cur.err
  elseif cur then
    local stored = tonumber(string.match(cur, '^{"a":(%d+)'))
    if stored and stored > tonumber(ARGV[j - 1]) and stored <= horizon then result = 0 end
  end
  if result == 1 then
    local done = redis.pcall('SET', key, ARGV[j - 2], 'PX', ARGV[j])
    if type(done) == 'table' and done.err then result = done.err end
  end
  out[i] = result
end
return out
"""
SET_IF_NEWER_SHA = hashlib.sha1(SET_IF_NEWER.encode(), usedforsecurity=False).hexdigest()

#: keys per EVALSHA: big enough that packing and round trips amortise, small enough that
#: one script holds the (single-threaded) server for well under a millisecond
MAX_KEYS_PER_SCRIPT = 256
#: envelope bytes per EVALSHA: a chunk of large values is cut short of this
MAX_BYTES_PER_SCRIPT = 1 << 20

DRIVER_ERRORS: tuple[type[BaseException], ...] = (redis_errors.RedisError, OSError, EOFError)
#: a connection that is gone (not a slow or refusing server): worth one retry on a fresh one
CONNECTION_LOST: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError, ConnectionError, EOFError,
)  # fmt: skip


@contextlib.contextmanager
def mapped(tier: str, op: str) -> Iterator[None]:
    """The one place redis-py's errors become ``CacheUnavailable`` (as httpx's
    ``map_httpcore_exceptions`` does for httpcore)."""
    try:
        yield
    except DRIVER_ERRORS as exc:
        raise CacheUnavailable(tier, op, type(exc).__name__) from exc


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
        max_keys_per_script: int = MAX_KEYS_PER_SCRIPT,
    ) -> None:
        check("redis.max_keys_per_script", max_keys_per_script, minimum(1, problem="must be >= 1"))
        self.url = url
        self.cluster = cluster
        self.max_keys_per_script = max_keys_per_script
        self.corrupt = 0
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

    async def _reconnect(self, op: str, exc: BaseException) -> None:
        """A pooled connection died (the server restarted, failed over, or dropped idle
        clients): drop the idle ones, which died with it, so the one retry gets a fresh
        connection instead of the next dead one."""
        log.info("redis_connection_lost_retrying", op=op, error=type(exc).__name__)
        if not isinstance(self.client, RedisCluster):  # the cluster client re-resolves nodes
            await self.client.connection_pool.disconnect(inuse_connections=False)

    async def _call(self, op: str, fn: Callable[[], Awaitable[T]]) -> T:
        """``fn()`` with driver errors mapped; once more on a fresh connection if a pooled
        one turned out dead. Every call is safe to repeat: reads, deletes, and the monotonic
        set script (a value already written compares equal) — a restarted server must not
        cost the first batch after it (issue 12)."""
        with mapped(self.name, op):
            try:
                return await fn()
            except CONNECTION_LOST as exc:
                await self._reconnect(op, exc)
                return await fn()

    async def get_many(self, keys: Sequence[str]) -> list[Envelope | None]:
        raw = await self._call("get", lambda: self._mget(keys))
        return [None if r is None else self._decode(k, r) for k, r in zip(keys, raw, strict=True)]

    async def _mget(self, keys: Sequence[str]) -> list[Any]:
        if isinstance(self.client, RedisCluster):
            return list(await self.client.mget_nonatomic(list(keys)))
        return list(await self.client.mget(list(keys)))

    async def set_many(self, items: Sequence[StoreItem]) -> list[bool]:
        if not items:
            return []
        return await self._call("set", lambda: self._set_many(items))

    async def _set_many(self, items: Sequence[StoreItem]) -> list[bool]:
        out = [False] * len(items)
        pending = self._chunks(items)
        for _attempt in range(2):  # again once after a server that lost its scripts
            results = await self._eval_chunks(items, pending)
            retry = []
            for chunk, result in zip(pending, results, strict=True):
                if isinstance(result, redis_errors.NoScriptError):
                    retry.append(chunk)
                elif isinstance(result, redis_errors.ResponseError):
                    # the server refused this call (not a lost connection): its keys are
                    # not written, the tier stays healthy — as a refused key always was
                    log.warning(
                        "redis_set_refused", key=items[chunk[0]].key, keys=len(chunk),
                        error=str(result),
                    )  # fmt: skip
                elif isinstance(result, BaseException):
                    raise result
                else:
                    self._settle(items, chunk, result, out)
            if not retry:
                break
            await self.client.script_load(SET_IF_NEWER)
            pending = retry
        return out

    def _chunks(self, items: Sequence[StoreItem]) -> list[list[int]]:
        """Positions in ``items``, cut into one script call each, in order. A Cluster runs
        a script on one node with keys of one hash slot only, so there a chunk is one slot's."""
        groups: Iterable[list[int]]
        if isinstance(self.client, RedisCluster):
            slots: dict[int, list[int]] = {}
            for p, item in enumerate(items):
                slots.setdefault(key_slot(item.key.encode()), []).append(p)
            groups = slots.values()
        else:
            groups = (list(range(len(items))),)
        most, budget = self.max_keys_per_script, MAX_BYTES_PER_SCRIPT
        chunks: list[list[int]] = []
        for group in groups:
            chunk: list[int] = []
            size = 0
            for p in group:
                body_size = len(items[p].body)
                if chunk and (len(chunk) >= most or size + body_size > budget):
                    chunks.append(chunk)
                    chunk, size = [], 0
                chunk.append(p)
                size += body_size
            if chunk:
                chunks.append(chunk)
        return chunks

    async def _eval_chunks(self, items: Sequence[StoreItem], chunks: list[list[int]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        horizon = write_horizon()
        for chunk in chunks:
            args: list[str | bytes | int] = [items[p].key for p in chunk]
            for p in chunk:
                item = items[p]
                args += (
                    item.encoded(),
                    item.body.as_of,
                    max(1, math.ceil(item.ttl_s * 1000)),
                )
            args.append(horizon)
            # execute_command: redis-py's cluster pipeline blocks the evalsha() helper but
            # routes a raw EVALSHA by its keys
            pipe.execute_command("EVALSHA", SET_IF_NEWER_SHA, len(chunk), *args)
        return list(await pipe.execute(raise_on_error=False))

    def _settle(
        self, items: Sequence[StoreItem], chunk: list[int], result: Any, out: list[bool]
    ) -> None:
        """One chunk's answer: 1 stored, 0 refused as older, else a per-key error text."""
        if not isinstance(result, list) or len(result) != len(chunk):
            raise redis_errors.InvalidResponse(f"set script answered {str(result)[:80]!r}")
        for p, answer in zip(chunk, result, strict=True):
            if isinstance(answer, int):
                out[p] = answer == 1
            else:
                # e.g. WRONGTYPE: the key is someone else's; count, never crash
                error = answer.decode("utf-8", "replace") if isinstance(answer, bytes) else answer
                log.warning("redis_set_refused", key=items[p].key, error=str(error))

    async def delete_many(self, keys: Sequence[str]) -> None:
        await self._call("delete", lambda: self._delete(keys))

    async def _delete(self, keys: Sequence[str]) -> None:
        if isinstance(self.client, RedisCluster):
            pipe = self.client.pipeline()
            for key in keys:
                pipe.delete(key)
            await pipe.execute()
        else:
            await self.client.delete(*keys)

    async def ping(self) -> None:
        """Every node answers: a single server PING; on a Cluster every primary its
        ``CLUSTER INFO``, each saying ``cluster_state:ok`` (a node just restarted answers
        PING but refuses keys with CLUSTERDOWN until it rejoined). The tier's health is the
        whole cluster's, not that of the one node a key's slot lands on. After a failed
        node the client learns the topology anew before the next probe."""
        with mapped(self.name, "ping"):
            if isinstance(self.client, RedisCluster):
                infos = await self.client.execute_command(
                    "CLUSTER INFO", target_nodes=RedisCluster.PRIMARIES
                )
                for node, info in dict(infos).items():
                    state = info.get("cluster_state") if isinstance(info, dict) else None
                    if state != "ok":
                        raise CacheUnavailable(self.name, "ping", f"{node} cluster_state {state}")
                return
            try:
                await self.client.ping()
            except CONNECTION_LOST:
                # the idle connections died with the server: the next ping gets a fresh
                # one (quietly: this runs once per cooldown for as long as Redis is down)
                await self.client.connection_pool.disconnect(inuse_connections=False)
                await self.client.ping()

    def bus(self, channel: str) -> RedisBus:
        """The invalidation bus over this server's (or cluster's) pub/sub."""
        from tiers._redis_bus import RedisBus  # it builds on this module's error mapping

        return RedisBus(self.client, channel, self.url)

    async def pttl_ms(self, key: str) -> int:
        """Milliseconds left for ``key`` (-2 absent, -1 no expiry); for tests and tools."""
        with mapped(self.name, "pttl"):
            return int(await self.client.pttl(key))

    async def close(self) -> None:
        try:
            await self.client.aclose()
            if isinstance(self.client, RedisCluster):
                # redis-py's aclose() does nothing while the client is marked for
                # re-initialising (after a node it used died): the sockets to the live
                # nodes then leaked into whichever test ran next
                await self.client.nodes_manager.aclose()
                await self.client.nodes_manager.aclose("startup_nodes")
        except DRIVER_ERRORS:
            log.debug("redis_close_failed")
