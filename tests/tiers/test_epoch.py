"""Tier epochs (``tiers/_epoch.py``) on private Redis and Memcached servers that the tests
restart empty: the restart is noticed, a refill restores each value with the TTL it had
left, and a refill never replaces a newer value."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from tests._servers import PrivateServer
from tests.tiers.conftest import steady_policy
from tests.tiers.test_cluster import start_cluster, stop_cluster
from tiers import EpochWatch, Kept, MemcachedTier, MultiTierCache, RedisTier, Write
from tiers._epoch import marker_keys

pytestmark = [pytest.mark.integration]

PREFIX = "t-epoch:epoch"


def now_ms() -> int:
    return int(time.time() * 1000)


def redis_cache(server: PrivateServer) -> MultiTierCache:
    return MultiTierCache(
        [RedisTier(server.url)], steady_policy(), invalidation_channel=None,
        breaker_cooldown_s=0.2,
    )  # fmt: skip


@dataclass
class OnRedis:
    server: PrivateServer  # the test's own: it may stop and restart it
    cache: MultiTierCache  # over that server alone
    watch: EpochWatch  # the cache's epoch watch


@pytest_asyncio.fixture(loop_scope="function")
async def on_redis(private_server: Callable[..., PrivateServer]) -> AsyncIterator[OnRedis]:
    server = private_server("redis")
    cache = redis_cache(server)
    yield OnRedis(server, cache, cache.epoch_watch(PREFIX))
    await cache.close()


def kept(symbol: str, last: float, as_of: int) -> Kept:
    """A ticker written at ``as_of`` (warm interval 15 s), as the cache kept it."""
    key = f"t-epoch:v2:market:ticker:15s:x:{symbol}"
    return Kept(Write(key, {"last": last}, "tickers", as_of, 0.0), as_of, 15.0)


async def new_after_restart(watch: EpochWatch, timeout_s: float = 10.0) -> list[str]:
    """Checks until one names a tier (the first calls after a restart may fail)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = await watch.check()
        if found:
            return found
        await asyncio.sleep(0.1)
    return []


async def test_a_redis_restarted_empty_is_found_new_once(on_redis: OnRedis) -> None:
    watch = on_redis.watch
    assert await watch.check() == ["redis"]  # no marker yet: marked, and new
    assert await watch.check() == []
    assert await watch.check() == []
    on_redis.server.stop()
    assert await watch.check() == []  # unreachable is unknown, not new
    on_redis.server.start()  # no persistence: empty
    assert await new_after_restart(watch) == ["redis"]
    assert await watch.check() == []  # marked again: found new once


async def test_a_tier_marked_by_another_process_counts_as_new_for_this_one(
    private_server: Callable[..., PrivateServer],
) -> None:
    server = private_server("redis")
    first, second = redis_cache(server), redis_cache(server)
    a, b = first.epoch_watch(PREFIX), second.epoch_watch(PREFIX)
    try:
        await a.check()
        assert await b.check() == []  # b adopts a's marker: nothing changed for it
        server.stop()
        server.start()
        assert await new_after_restart(a) == ["redis"]  # a notices first and marks it
        assert await b.check() == ["redis"]  # b finds a changed id: new for b too
        assert await a.check() == [] and await b.check() == []
    finally:
        await first.close()
        await second.close()


async def test_each_memcached_server_has_its_marker_and_one_restarted_is_found(
    private_server: Callable[..., PrivateServer],
) -> None:
    one, two = private_server("memcached"), private_server("memcached")
    servers = [f"127.0.0.1:{one.port}", f"127.0.0.1:{two.port}"]
    tier = MemcachedTier(servers)
    keys = marker_keys(tier, PREFIX)
    assert len(keys) == 2
    assert sorted(tier._ring.index_for(k.encode()) for k in keys) == [0, 1]
    cache = MultiTierCache([tier], steady_policy(), invalidation_channel=None,
                           breaker_cooldown_s=0.2)  # fmt: skip
    watch = cache.epoch_watch(PREFIX)
    try:
        assert await watch.check() == ["memcached"]
        assert await watch.check() == []
        two.stop()
        two.start()
        assert await new_after_restart(watch) == ["memcached"]
        assert await watch.check() == []
    finally:
        await cache.close()


async def test_a_refill_restores_values_with_the_ttl_they_had_left(on_redis: OnRedis) -> None:
    cache = on_redis.cache
    client = aioredis.from_url(on_redis.server.url)
    now = now_ms()
    policy = steady_policy()
    fresh_s = policy.ttls_many([("tickers", 0.0)], cache.levels, warm_interval=15.0)[0][-1]
    stale_s = policy.stale_for("tickers")
    recent = kept("A/B", 1.0, now - 200_000)
    gone = kept("C/D", 2.0, now - 10_000_000)
    try:
        done = await on_redis.watch.refill("redis", [recent, gone])
        assert (done.written, done.refused, done.expired, done.failed) == (1, 0, 1, 0)
        assert await client.get(gone.write.key) is None  # past its stale window too
        env = orjson.loads(await client.get(recent.write.key))
        assert env["v"] == {"last": 1.0} and env["a"] == recent.write.as_of
        assert env["w"] == recent.written_ms  # the envelope as first written
        assert env["f"] == recent.written_ms + int(fresh_s * 1000)  # fresh as long as it was
        left_ms = await client.pttl(recent.write.key)
        expected_ms = (fresh_s + stale_s) * 1000 - 200_000
        assert expected_ms - 5_000 < left_ms <= expected_ms
        hit = await cache.get(recent.write.key, max_stale=10_000)
        assert fresh_s < 200 and hit is not None and hit.stale  # past its fresh TTL: flagged
    finally:
        await client.aclose()


async def test_a_refill_never_replaces_a_newer_value(on_redis: OnRedis) -> None:
    cache, now = on_redis.cache, now_ms()
    older = kept("N/W", 1.0, now - 5_000)
    key = older.write.key
    # the stream wrote a newer value after the restart, before the refill came
    await cache.set(key, {"last": 2.0}, data_type="tickers", as_of=now, warm_interval=15.0)
    done = await on_redis.watch.refill("redis", [older])
    assert (done.written, done.refused) == (0, 1)
    hit = await cache.get(key)
    assert hit is not None and hit.value == {"last": 2.0} and hit.as_of == now


async def test_a_refill_the_tier_cannot_take_reports_them_failed(on_redis: OnRedis) -> None:
    on_redis.server.stop()
    done = await on_redis.watch.refill("redis", [kept("F/L", 1.0, now_ms())])
    assert (done.written, done.failed) == (0, 1)  # so the caller tries again


async def test_each_redis_cluster_primary_has_its_marker_and_one_emptied_is_found(
    tmp_path: Path,
) -> None:
    ports, procs = start_cluster(tmp_path)
    cache = MultiTierCache.from_urls(
        f"redis+cluster://127.0.0.1:{ports[0]}", ttl_policy=steady_policy(), timeout_s=2.0,
        invalidation_channel=None,
    )  # fmt: skip
    watch = cache.epoch_watch(PREFIX)
    try:
        assert await watch.check() == ["redis"]
        keys = marker_keys(cache.tiers[0], PREFIX)
        assert len(keys) == 3  # one per primary
        seed = aioredis.from_url(f"redis://127.0.0.1:{ports[0]}")
        try:
            ranges = await seed.execute_command("CLUSTER", "SLOTS")
            owners = set()
            for key in keys:
                slot = int(await seed.execute_command("CLUSTER", "KEYSLOT", key))
                owners |= {int(r[2][1]) for r in ranges if int(r[0]) <= slot <= int(r[1])}
        finally:
            await seed.aclose()
        assert owners == set(ports)  # each primary holds one
        assert await watch.check() == []
        # one node loses its data (a restart without persistence): its marker goes with it
        node = aioredis.from_url(f"redis://127.0.0.1:{ports[1]}")
        try:
            await node.flushall()
        finally:
            await node.aclose()
        assert await new_after_restart(watch) == ["redis"]
        assert await watch.check() == []
    finally:
        await cache.close()
        stop_cluster(procs)
