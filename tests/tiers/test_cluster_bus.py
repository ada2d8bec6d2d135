"""The invalidation bus on a Redis Cluster outlives the seed node it was configured with:
PUBLISH reaches every node, and the subscriber moves to another known node when its own
one goes (before, it always reconnected to the seed URL, and with the seed gone the
process never heard another invalidation while its L1 kept serving)."""

from __future__ import annotations

import asyncio

import pytest

from tests.tiers._cluster import key_on_node
from tests.tiers.conftest import two_caches
from tiers import MultiTierCache

pytestmark = pytest.mark.integration


# issue 13: an announcement that failed while the writer's cluster client still sent PUBLISH
# to the dead seed (bus_publish_failed) was never sent again, so b kept its older L1 copy
# (2 runs in 3); and the writer's client, marked for re-initialising, leaked its sockets into
# the next test (test_cluster.py::test_a_cluster_tier_closes_its_sockets_after_a_node_died).
# Announcements now go to a live primary, and failed ones are re-sent.
async def test_invalidations_reach_the_l1_after_the_seed_node_dies(
    cluster: tuple[list[int], list[object]], prefix: str
) -> None:
    ports, procs = cluster
    url = f"redis+cluster://127.0.0.1:{ports[0]}"
    channel = f"{prefix}:bus"
    key = key_on_node(prefix, 2)  # stays writable when the seed node dies

    def cache() -> MultiTierCache:
        return MultiTierCache.from_urls(
            "memory://", url, invalidation_channel=channel, timeout_s=2.0, write_timeout_s=2.0
        )

    async with two_caches(cache) as (a, b):
        await a.set(key, "v1", data_type="default", as_of=1)
        assert (await b.get(key)).value == "v1"  # type: ignore[union-attr]
        assert (await b.get(key)).tier == "memory"  # type: ignore[union-attr]

        procs[0].terminate()  # type: ignore[attr-defined]  # the seed node
        procs[0].wait(10)  # type: ignore[attr-defined]

        async def written(value: str, as_of: int) -> None:
            for _ in range(100):  # the writer's cluster client learns the topology anew
                if "redis" in await a.set(key, value, data_type="default", as_of=as_of):
                    return
                await asyncio.sleep(0.1)
            raise AssertionError(f"{value} never written")

        async def b_reads(value: str) -> str:
            for _ in range(100):
                hit = await b.get(key)
                if hit is not None and hit.value == value:
                    return hit.tier
                await asyncio.sleep(0.05)
            raise AssertionError(f"b never read {value}")

        await written("v2", 2)
        await b_reads("v2")  # never the old L1 copy for long
        for _ in range(200):  # b resubscribes, on a node that is alive
            if b.subscribed:
                break
            await asyncio.sleep(0.05)
        assert b.subscribed
        assert await b_reads("v2") in ("memory", "redis")
        assert (await b.get(key)).tier == "memory"  # type: ignore[union-attr]  # trusted again
        invalidations = b.invalidations
        await written("v3", 3)  # announced through a live node, heard by b's new subscription
        assert await b_reads("v3") == "redis"  # b's L1 copy was dropped, not served
        assert b.invalidations > invalidations
        assert a._coherence is not None and a._coherence.unsent == 0
