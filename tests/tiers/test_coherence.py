"""Write coherence across processes: every write batch is announced on the bus with its
keys and ``as_of``; a process holding an older copy in L1 drops it; while the bus is lost
the L1 is not trusted, and no stale copy survives its return."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests._servers import PrivateServer
from tests.conftest import StackURLs
from tests.tiers._cut import CuttableRelay
from tests.tiers.conftest import two_caches
from tiers import MultiTierCache, RedisBus, Write
from tiers._envelope import now_ms

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LAG_MS = 100  # the goal: never behind a write made elsewhere more than this long ago


async def test_a_reader_process_l1_never_lags_a_writer_process(
    stack_urls: StackURLs, prefix: str
) -> None:
    key = f"{prefix}:v2:market:ticker:15s:binance:COH/USDT"
    channel = f"{prefix}:bus"
    reader = MultiTierCache.from_urls(
        "memory://", stack_urls.memcached_url, stack_urls.redis_url,
        invalidation_channel=channel, timeout_s=1.0,
    )  # fmt: skip
    writer = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.tiers._writer_process", key, channel,
        stack_urls.memcached_url, stack_urls.redis_url, "--seconds", "3", "--rate", "10",
        cwd=ROOT, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    reads: list[tuple[int, int, str]] = []  # (read at ms, as_of returned, tier)
    try:
        assert await reader.start()
        assert writer.stdout is not None
        assert json.loads(await writer.stdout.readline()) == {"ready": True}
        while writer.returncode is None:
            hit = await reader.get(key)
            if hit is not None:
                reads.append((now_ms(), hit.as_of, hit.tier))
            await asyncio.sleep(0.002)
            if len(reads) > 5000 or (reads and now_ms() - reads[0][0] > 10_000):
                break
            try:
                await asyncio.wait_for(writer.wait(), 0.001)
            except TimeoutError:
                pass
        writes = [json.loads(line) for line in (await writer.stdout.read()).splitlines()]
    finally:
        if writer.returncode is None:
            writer.kill()
            await writer.wait()
        await reader.close()
    assert writer.returncode == 0
    assert len(writes) >= 25  # ~10 a second for 3 s
    assert len(reads) > 100
    assert sum(t == "memory" for _, _, t in reads) > len(reads) / 2  # L1 really answered
    behind = [
        (at, got, newest)
        for at, got, _tier in reads
        if (newest := max((w["as_of"] for w in writes if w["done_ms"] <= at - LAG_MS), default=0))
        > got
    ]
    assert behind == [], f"{len(behind)} of {len(reads)} reads older than a write >100 ms old"
    assert reader.invalidations >= len(writes) - 2  # each write dropped the reader's copy


async def test_no_stale_l1_copy_survives_a_lost_bus(
    private_server: Callable[[str], PrivateServer], stack_urls: StackURLs, prefix: str
) -> None:
    """The caches share the real tiers; their bus runs on a private Redis we can stop."""
    bus_server = private_server("redis")
    channel = f"{prefix}:bus"

    def cache() -> MultiTierCache:
        bus = RedisBus.from_url(bus_server.url, channel)
        return MultiTierCache.from_urls(
            "memory://", stack_urls.memcached_url, stack_urls.redis_url, bus=bus,
            timeout_s=1.0, write_timeout_s=0.5,
        )  # fmt: skip

    key = f"{prefix}:v2:misc:value:1m:bus"
    async with two_caches(cache) as (a, b):
        await a.set(key, "v1", data_type="default", as_of=1)
        assert (await b.get(key)).value == "v1"  # type: ignore[union-attr]
        assert (await b.get(key)).tier == "memory"  # type: ignore[union-attr]

        bus_server.stop()
        for _ in range(100):
            if not b.subscribed:
                break
            await asyncio.sleep(0.05)
        assert not b.subscribed
        await a.set(key, "v2", data_type="default", as_of=2)  # b cannot hear this
        during = await b.get(key)
        assert during is not None and during.value == "v2" and during.tier != "memory"
        assert (await b.get(key)).tier != "memory"  # type: ignore[union-attr]  # bypassed

        bus_server.start()
        for _ in range(200):
            if b.subscribed:
                break
            await asyncio.sleep(0.05)
        assert b.subscribed
        after = await b.get(key)
        assert after is not None and after.value == "v2"
        assert (await b.get(key)).tier == "memory"  # type: ignore[union-attr]  # trusted again
        await a.set(key, "v3", data_type="default", as_of=3)
        for _ in range(100):
            hit = await b.get(key)
            if hit is not None and hit.value == "v3":
                break
            await asyncio.sleep(0.01)
        assert hit is not None and hit.value == "v3"


async def test_one_message_per_batch_drops_only_older_copies(
    stack_urls: StackURLs, prefix: str
) -> None:
    channel = f"{prefix}:bus"
    keys = [f"{prefix}:v2:misc:value:1m:b{i}" for i in range(2500)]

    def cache() -> MultiTierCache:
        return MultiTierCache.from_urls(
            "memory://", stack_urls.redis_url, invalidation_channel=channel
        )

    async with two_caches(cache) as (a, b):
        await a.set_many([Write(k, 0, "default", 10) for k in keys])
        await b.get_many(keys)
        assert len(b.tiers[0]) == len(keys)  # type: ignore[arg-type]
        published = a._coherence.published  # type: ignore[union-attr]
        # a newer write of half the keys, one older one (refused everywhere): 3 messages
        await a.set_many([Write(k, 1, "default", 20) for k in keys[:1250]] + [
            Write(keys[-1], 1, "default", 5)
        ])  # fmt: skip
        await a.drain()  # the announcement goes out in the background
        assert a._coherence.published - published == 2  # type: ignore[union-attr]  # 1,250 keys
        for _ in range(100):
            if b.invalidations >= 1250:
                break
            await asyncio.sleep(0.02)
        assert b.invalidations == 1250
        assert len(b.tiers[0]) == len(keys) - 1250  # type: ignore[arg-type]
        fresh = await b.get(keys[0])
        assert fresh is not None and fresh.as_of == 20


async def test_an_announcement_that_failed_is_sent_again(redis_url: str, prefix: str) -> None:
    """issue 13: a writer whose bus connection fails (here: a relay in front of Redis cut,
    while the other cache's subscription lives on) announced nothing, and the other cache
    kept its older L1 copy for up to one L1 TTL. Failed announcements are now kept and sent
    again — several of them coalesced into one message per batch."""
    relay = CuttableRelay("127.0.0.1", int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    await relay.start()
    channel = f"{prefix}:bus"
    a = MultiTierCache.from_urls(
        "memory://", redis_url, bus=RedisBus.from_url(f"redis://127.0.0.1:{relay.port}/0", channel),
        timeout_s=1.0, write_timeout_s=0.5,
    )  # fmt: skip
    b = MultiTierCache.from_urls("memory://", redis_url, invalidation_channel=channel)
    ks = [f"{prefix}:v2:misc:value:1m:r{i}" for i in range(3)]
    try:
        assert await a.start() and await b.start()
        await a.set_many([Write(k, "v1", "default", 1) for k in ks])
        assert [h.value for h in await b.get_many(ks) if h] == ["v1"] * 3
        assert {h.tier for h in await b.get_many(ks) if h} == {"memory"}
        coherence = a._coherence
        assert coherence is not None
        await relay.cut()  # a's bus is gone; b's subscription (direct) is not
        for i, k in enumerate(ks):  # three batches, none announced
            assert "redis" in await a.set(k, "v2", data_type="default", as_of=2 + i)
            await a.drain()
        assert coherence.publish_errors + coherence.publish_skipped >= 3
        assert coherence.unsent == 3
        assert [h.value for h in await b.get_many(ks) if h] == ["v1"] * 3  # b's L1: stale
        published = coherence.published
        await relay.start()  # back: the re-sender's next try goes through

        async def b_reads_v2() -> bool:
            return [h.value if h else None for h in await b.get_many(ks)] == ["v2"] * 3

        for _ in range(100):
            if await b_reads_v2():
                break
            await asyncio.sleep(0.05)
        assert await b_reads_v2()
        assert coherence.unsent == 0 and coherence.unsent_given_up == 0
        assert coherence.published == published + 1  # the three owed keys, one message
        assert b.invalidations >= 3
    finally:
        await a.close()
        await b.close()
        await relay.close()
