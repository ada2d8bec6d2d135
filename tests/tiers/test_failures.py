"""Failure isolation on private servers: stop Memcached, then Redis, mid-test; freeze one
(SIGSTOP) so calls time out. Reads and writes keep working from what is left, without an
exception, and each tier is probed back in after it returns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from tests._servers import PrivateServer
from tests.tiers.conftest import steady_policy
from tiers import MultiTierCache, Write
from tiers._envelope import now_ms

pytestmark = pytest.mark.integration

MakeCache = Callable[..., MultiTierCache]  # the fixture below


@pytest_asyncio.fixture(loop_scope="function")
async def make_cache() -> AsyncIterator[MakeCache]:
    """``make_cache(*urls, channel=None, cooldown_s=0.2)``: a cache with short timeouts and
    a quick breaker, closed after the test."""
    made: list[MultiTierCache] = []

    def make(*urls: str, channel: str | None = None, cooldown_s: float = 0.2) -> MultiTierCache:
        cache = MultiTierCache.from_urls(
            *urls,
            ttl_policy=steady_policy(),
            timeout_s=0.5,
            write_timeout_s=0.5,
            breaker_failures=2,
            breaker_cooldown_s=cooldown_s,
            invalidation_channel=channel,
        )
        made.append(cache)
        return cache

    yield make
    for cache in made:
        await cache.close()


def keys(prefix: str, n: int = 10) -> list[str]:
    return [f"{prefix}:v2:misc:value:1m:k{i}" for i in range(n)]


async def until(predicate: Callable[[], object], what: str, tries: int = 100) -> None:
    for _ in range(tries):
        if await predicate() if asyncio.iscoroutinefunction(predicate) else predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def test_memcached_then_redis_go_away_and_come_back(
    private_server: Callable[[str], PrivateServer], prefix: str, make_cache: MakeCache
) -> None:
    mc, rd = private_server("memcached"), private_server("redis")
    cache = make_cache("memory://", mc.url, rd.url, channel=f"{prefix}:inv")
    ks = keys(prefix)
    assert await cache.start()
    await cache.set_many([Write(k, i, "default", 100) for i, k in enumerate(ks)])

    # -- Memcached stops -------------------------------------------------------------
    mc.stop()
    cache.tiers[0].clear()  # type: ignore[attr-defined]  # force reads below L1
    hits = [await cache.get(k) for k in ks]
    assert [h.value if h else None for h in hits] == list(range(10))
    assert {h.tier for h in hits if h} <= {"redis", "memory"}
    written = await cache.set(ks[0], "during outage", data_type="default", as_of=200)
    assert set(written) == {"memory", "redis"}
    stats = cache.stats()["memcached"]
    assert stats["errors"] >= 2 and stats["breaker"] in ("open", "half_open")

    mc.start()  # same port, empty

    async def memcached_takes_writes() -> bool:
        got = await cache.set(ks[1], "after restart", data_type="default", as_of=300)
        return "memcached" in got

    await until(memcached_takes_writes, "memcached probed back in")
    assert cache.stats()["memcached"]["breaker"] == "closed"

    # -- Redis stops -----------------------------------------------------------------
    rd.stop()
    # Redis carries the invalidation bus: without it, L1 cannot hear others' writes, so
    # it is emptied and bypassed until the bus is back
    await until(lambda: not cache.subscribed, "listener noticed the bus is gone")
    assert len(cache.tiers[0]) == 0  # type: ignore[arg-type]
    hit = await cache.get(ks[1])
    assert hit is not None and hit.value == "after restart" and hit.tier == "memcached"
    assert await cache.get(ks[5]) is None  # only ever in the (gone) Redis and L1: a miss
    written = await cache.set(ks[2], "redis away", data_type="default", as_of=400)
    assert set(written) == {"memcached"}  # not into an L1 nobody can invalidate
    await cache.delete(ks[2])  # no exception, the publish is skipped too
    assert cache.stats()["redis"]["errors"] >= 2

    rd.start()

    async def redis_takes_writes() -> bool:
        return "redis" in await cache.set(ks[3], "back", data_type="default", as_of=500)

    await until(redis_takes_writes, "redis probed back in")
    # the invalidation listener resubscribes on its own, and L1 is trusted again
    await until(lambda: cache.subscribed, "listener resubscribed")
    assert cache.stats()["redis"]["breaker"] == "closed"
    written = await cache.set(ks[4], "all back", data_type="default", as_of=600)
    assert set(written) == {"memory", "memcached", "redis"}


async def test_a_frozen_tier_times_out_is_skipped_then_returns(
    private_server: Callable[[str], PrivateServer], prefix: str, make_cache: MakeCache
) -> None:
    mc, rd = private_server("memcached"), private_server("redis")
    cache = make_cache(mc.url, rd.url, cooldown_s=2.0)
    ks = keys(prefix, 4)
    await cache.set_many([Write(k, i, "default", 100) for i, k in enumerate(ks)])
    mc.freeze()  # accepts connections, never answers
    results = [await cache.get(k) for k in ks]
    assert [(h.value, h.tier) if h else None for h in results] == [(i, "redis") for i in range(4)]
    stats = cache.stats()["memcached"]
    # two timeouts open the breaker (a promotion racing a read may add one more) ...
    assert stats["errors"] >= 2 and stats["breaker"] != "closed"
    assert stats["skipped"] >= 1  # ... and later calls did not wait on it
    mc.thaw()

    async def back() -> bool:
        hit = await cache.get(ks[0])
        return hit is not None and hit.tier == "memcached"

    await until(back, "memcached answers again", tries=200)


async def test_everything_below_l1_down_still_answers(
    private_server: Callable[[str], PrivateServer], prefix: str, make_cache: MakeCache
) -> None:
    mc, rd = private_server("memcached"), private_server("redis")
    cache = make_cache("memory://", mc.url, rd.url)
    k_warm, k_cold = keys(prefix, 2)
    await cache.set(k_warm, "warm", data_type="default", as_of=1)
    mc.stop()
    rd.stop()
    hit = await cache.get(k_warm)
    assert hit is not None and hit.tier == "memory"
    assert await cache.get(k_cold) is None
    assert await cache.get_many([k_warm, k_cold]) == [hit, None]
    assert set(await cache.set(k_cold, "l1 only", data_type="default", as_of=now_ms())) == {
        "memory"
    }
    await cache.delete(k_warm)
    assert await cache.get(k_warm) is None


async def test_delete_drops_the_key_from_other_processes_l1(
    prefix: str, redis_url: str, make_cache: MakeCache
) -> None:
    channel = f"{prefix}:invalidate"
    a = make_cache("memory://", redis_url, channel=channel)
    b = make_cache("memory://", redis_url, channel=channel)
    key, other = keys(prefix, 2)
    assert await a.start() and await b.start()
    await a.set_many([Write(key, "v", "default", 1), Write(other, "w", "default", 1)])
    first = await b.get_many([key, other])
    assert [h.tier if h else None for h in first] == ["redis", "redis"]
    assert (await b.get(key)).tier == "memory"  # type: ignore[union-attr]
    assert (await b.get(other)).tier == "memory"  # type: ignore[union-attr]
    await a.delete(key)
    await until(lambda: b.tiers[0].remaining_s(key) is None, "b's L1 dropped the key")  # type: ignore[attr-defined]
    assert await b.get(key) is None
    kept = await b.get(other)
    assert kept is not None and kept.tier == "memory"  # only the deleted key went
    assert b.stats()["overall"]["invalidations"] == 1


async def test_two_memcached_servers_share_the_keys(
    private_server: Callable[[str], PrivateServer], prefix: str, make_cache: MakeCache
) -> None:
    one, two = private_server("memcached"), private_server("memcached")
    url = f"memcached://127.0.0.1:{one.port},127.0.0.1:{two.port}"
    cache = make_cache(url)
    ks = keys(prefix, 200)
    await cache.set_many([Write(k, i, "default", 1) for i, k in enumerate(ks)])
    hits = await cache.get_many(ks)
    assert [h.value if h else None for h in hits] == list(range(200))
    only_one = make_cache(one.url)
    on_one = sum(h is not None for h in await only_one.get_many(ks))
    assert 50 < on_one < 150  # spread over both servers


async def test_an_item_memcached_refuses_does_not_trip_its_breaker(
    private_server: Callable[..., PrivateServer], prefix: str, redis_url: str, make_cache: MakeCache
) -> None:
    # a server that refuses items over 4 KiB
    small_items = private_server("memcached", "-I", "4096", "-o", "slab_chunk_max=2048")
    cache = make_cache(small_items.url, redis_url)
    big, small = keys(prefix, 2)
    written = await cache.set(big, "x" * 10_000, data_type="default", as_of=1)
    assert set(written) == {"redis"}
    assert cache.tiers[0].refused == 1  # type: ignore[attr-defined]
    assert set(await cache.set(small, "x", data_type="default", as_of=1)) == {
        "memcached", "redis",
    }  # fmt: skip
    stats = cache.stats()["memcached"]
    assert stats["errors"] == 0 and stats["breaker"] == "closed"
    hit = await cache.get(big)
    assert hit is not None and hit.tier == "redis" and len(hit.value) == 10_000


async def test_redis_with_a_password(
    private_server: Callable[..., PrivateServer], prefix: str, make_cache: MakeCache
) -> None:
    rd = private_server("redis", "--requirepass", "s3cret")
    good = make_cache(f"redis://:s3cret@127.0.0.1:{rd.port}/0")
    bad = make_cache(f"redis://:wrong@127.0.0.1:{rd.port}/0")
    key = keys(prefix, 1)[0]
    assert set(await good.set(key, 1, data_type="default", as_of=1)) == {"redis"}
    assert (await good.get(key)).value == 1  # type: ignore[union-attr]
    with capture_logs() as logs:
        assert await bad.get(key) is None  # refused by the server: a miss, no exception
    assert bad.stats()["redis"]["errors"] == 1
    assert "s3cret" not in repr(logs) and "wrong" not in repr(logs)


def breaker_gauge(tier: str) -> float | None:
    return REGISTRY.get_sample_value("warmfleet_cache_breaker_open", {"tier": tier})


@pytest.mark.parametrize("kind", ["redis", "memcached"])
async def test_an_open_tier_is_probed_back_in_without_traffic(
    private_server: Callable[[str], PrivateServer], prefix: str, kind: str, make_cache: MakeCache
) -> None:
    # issue 12: a reader whose reads L1 answers showed Redis's breaker open for ~24 s after
    # Redis was back; the cache now pings an open tier (every node of it) once per cooldown
    server = private_server(kind)
    cache = make_cache("memory://", server.url, cooldown_s=0.3)
    ks = keys(prefix, 3)
    server.stop()
    for k in ks:  # misses go to the tier, fail, and open its breaker
        assert await cache.get(k) is None
    assert cache.stats()[kind]["breaker"] != "closed"
    assert breaker_gauge(kind) == 1
    await asyncio.sleep(1.0)  # probes while it is down fail: it stays open
    slot = cache._lower[0]
    assert slot.probes >= 2 and slot.probe_failures == slot.probes
    assert cache.stats()[kind]["breaker"] != "closed"
    calls = cache.stats()[kind]["latency_count"]
    server.start()
    # no read, no write: the breaker (and the gauge) close by themselves
    await until(lambda: cache.stats()[kind]["breaker"] == "closed", f"{kind} probed back")
    assert breaker_gauge(kind) == 0
    assert cache.stats()[kind]["latency_count"] == calls  # no call but the probe went out
    hit_or_miss = await cache.get(ks[0])  # and the tier answers reads again at once
    assert hit_or_miss is None and cache.stats()[kind]["misses"] >= 1
