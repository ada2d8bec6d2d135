"""Redis Cluster: three private masters, keys spread over slots; the Redis tier works the same."""

from __future__ import annotations

import asyncio
import gc
import subprocess
from collections.abc import Iterator

import pytest
from redis import exceptions as redis_errors
from redis.crc import key_slot

from tests.tiers._cluster import SLOT_RANGES, key_on_node, restart_node, start_cluster, stop_cluster
from tests.tiers.conftest import two_caches
from tests.tiers.test_failures import until
from tiers import MultiTierCache, RedisTier, Write
from tiers._envelope import encode_body, now_ms
from tiers._protocol import StoreItem

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    ports, procs = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        stop_cluster(procs)


async def test_cluster_write_read_delete_and_monotonic(cluster_url: str, prefix: str) -> None:
    keys = [f"{prefix}:v2:misc:value:1m:c{i}" for i in range(60)]
    writer = MultiTierCache.from_urls(cluster_url, timeout_s=2.0, invalidation_channel=None)
    reader = MultiTierCache.from_urls(
        "memory://", cluster_url, timeout_s=2.0, invalidation_channel=None
    )
    try:
        assert isinstance(writer.tiers[0], RedisTier) and writer.tiers[0].cluster
        results = await writer.set_many([Write(k, i, "default", 10) for i, k in enumerate(keys)])
        assert all("redis" in r for r in results)
        stale = await writer.set_many([Write(k, -1, "default", 5) for k in keys])
        assert all(r == {} for r in stale)  # monotonic on every node
        hits = await reader.get_many(keys)
        assert [h.value if h else None for h in hits] == list(range(60))
        assert {h.tier for h in hits if h} == {"redis"}
        await writer.delete(keys[0])
        reader.tiers[0].clear()  # type: ignore[attr-defined]
        assert await reader.get(keys[0]) is None
        assert (await reader.get(keys[1])).value == 1  # type: ignore[union-attr]
        await asyncio.sleep(0)
    finally:
        await writer.close()
        await reader.close()


async def test_cluster_invalidation_reaches_other_l1(cluster_url: str, prefix: str) -> None:
    channel = f"{prefix}:invalidate"
    # a generous timeout, as above: a cluster client's first call learns the topology, which
    # the default 0.1 s did not always cover on the busy shared machine
    key = f"{prefix}:v2:misc:value:1m:inv"

    def cache() -> MultiTierCache:
        return MultiTierCache.from_urls(
            "memory://", cluster_url, invalidation_channel=channel, timeout_s=2.0
        )

    async with two_caches(cache) as (a, b):
        await a.set(key, "v", data_type="default", as_of=1)
        assert (await b.get(key)).tier == "redis"  # type: ignore[union-attr]
        assert (await b.get(key)).tier == "memory"  # type: ignore[union-attr]
        await a.delete(key)
        for _ in range(100):
            if b.tiers[0].remaining_s(key) is None:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.05)
        assert await b.get(key) is None
        assert b.stats()["overall"]["invalidations"] == 1


async def test_cluster_batches_by_hash_slot(cluster_url: str, prefix: str) -> None:
    """A script may only touch keys of one slot: keys sharing a hash tag go out in one call
    (cut at the chunk size), the rest one slot at a time; answers still follow the items."""
    tagged = [f"{{{prefix}}}:v2:misc:value:1m:t{i}" for i in range(7)]
    spread = [f"{prefix}:v2:misc:value:1m:s{i}" for i in range(7)]
    keys = [k for pair in zip(tagged, spread, strict=True) for k in pair]
    tier = RedisTier(cluster_url.replace("+cluster://", "://"), cluster=True, max_keys_per_script=3)
    try:
        first = [item_for(k, 10) for k in keys[::2]]
        assert await tier.set_many(first) == [True] * 7
        chunks = tier._chunks([item_for(k, 1) for k in keys])
        assert sorted(len(c) for c in chunks if keys[c[0]] in tagged) == [1, 3, 3]
        answers = await tier.set_many([item_for(k, 5 + i) for i, k in enumerate(keys)])
        # the tagged keys hold as_of 10: refused below it, stored from 10 on
        assert answers == [5 + i >= 10 if k in tagged else True for i, k in enumerate(keys)]
        found = await tier.get_many(keys)
        assert [e.as_of if e else None for e in found] == [
            max(10, 5 + i) if k in tagged else 5 + i for i, k in enumerate(keys)
        ]
    finally:
        await tier.close()


def item_for(key: str, as_of: int) -> StoreItem:
    body = encode_body(key, as_of, as_of=as_of, written_at=1, source="t")
    return StoreItem(key, body, 60.0, now_ms() + 60_000)


async def test_an_open_cluster_is_probed_back_in_when_every_primary_answers(
    cluster: tuple[list[int], list[subprocess.Popen[bytes]]], prefix: str
) -> None:
    """issue 12 on a Cluster: the background probe PINGs every primary. A probe that read
    one key (the reverted first fix) asked one node only: with another node down it closed
    the breaker of a tier that still failed every read of that node's slots."""
    ports, procs = cluster
    # the node to stop: not the seed, and not the one the old probe key's slot lands on
    old_probe_slot = key_slot(b"warmfleet:probe")
    victim = next(i for i in (1, 2) if not SLOT_RANGES[i][0] <= old_probe_slot <= SLOT_RANGES[i][1])
    cache = MultiTierCache.from_urls(
        "memory://", f"redis+cluster://127.0.0.1:{ports[0]}", timeout_s=0.5,
        write_timeout_s=0.5, breaker_failures=2, breaker_cooldown_s=0.3,
        invalidation_channel=None,
    )  # fmt: skip
    on_victim = [key_on_node(prefix, victim, tag) for tag in ("a", "b", "c")]
    try:
        assert await cache.get(on_victim[0]) is None  # the client knows the topology
        procs[victim].terminate()
        procs[victim].wait(10)
        for key in on_victim:  # reads of the victim's slots fail and open the breaker
            assert await cache.get(key) is None
        assert cache.stats()["redis"]["breaker"] != "closed"
        await asyncio.sleep(1.5)  # ~5 cooldowns: two primaries answer, one does not
        slot = cache._lower[0]
        assert slot.probes >= 2 and slot.probe_failures == slot.probes
        assert cache.stats()["redis"]["breaker"] != "closed"
        calls = cache.stats()["redis"]["latency_count"]
        restart_node(procs, victim, ports[victim])
        # no read, no write: every primary answers again, so the breaker closes
        await until(lambda: cache.stats()["redis"]["breaker"] == "closed", "cluster probed back")
        assert cache.stats()["redis"]["latency_count"] == calls
        assert await cache.get(on_victim[1]) is None  # a miss from the victim, not a skip
        assert cache.stats()["redis"]["misses"] >= 2
    finally:
        await cache.close()


async def test_a_cluster_tier_closes_its_sockets_after_a_node_died(
    cluster: tuple[list[int], list[subprocess.Popen[bytes]]], prefix: str
) -> None:
    """redis-py's cluster ``aclose()`` does nothing while the client is marked for
    re-initialising — as it is right after a call to a dead node failed — so its sockets
    to the live nodes leaked, and their ResourceWarning failed whichever test ran next."""
    ports, procs = cluster
    tier = RedisTier(f"redis://127.0.0.1:{ports[0]}", cluster=True)
    keys = [key_on_node(prefix, i) for i in range(3)]
    assert await tier.get_many(keys) == [None] * 3  # a connection to every node
    procs[0].terminate()  # the seed, and the node redis-py sends keyless commands to
    procs[0].wait(10)
    with pytest.raises(redis_errors.ConnectionError):  # marks the client for re-initialising
        await tier.client.get(keys[0])
    await tier.close()
    del tier
    gc.collect()  # an unclosed socket warns here, failing this test (filterwarnings=error)
