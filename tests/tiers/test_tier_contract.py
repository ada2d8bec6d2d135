"""The ``Tier`` protocol's contract, one test body per rule, run on every backend (the
``tier`` and ``single_tier_cache`` fixtures are parametrized over memory, memcached, redis)."""

from __future__ import annotations

import asyncio

import pytest

from tiers import MultiTierCache, Tier, Write
from tiers._envelope import encode_body, now_ms
from tiers._protocol import StoreItem

pytestmark = pytest.mark.integration


def item(key: str, as_of: int, value: object, ttl_s: float = 60.0) -> StoreItem:
    body = encode_body(key, value, as_of=as_of, written_at=1, source="contract")
    return StoreItem(key, body, ttl_s, now_ms() + int(ttl_s * 1000))


def keys(prefix: str, n: int) -> list[str]:
    return [f"{prefix}:v2:misc:value:1m:c{i}" for i in range(n)]


async def test_round_trip_in_key_order_with_misses(tier: Tier, prefix: str) -> None:
    ks = keys(prefix, 5)
    assert await tier.set_many([item(k, 10, {"i": i}) for i, k in enumerate(ks[:4])]) == [True] * 4
    found = await tier.get_many([ks[3], ks[4], ks[0]])
    assert [e.value if e else None for e in found] == [{"i": 3}, None, {"i": 0}]
    assert found[0] is not None and found[0].as_of == 10 and found[0].source == "contract"


async def test_an_older_as_of_is_refused_a_newer_or_equal_one_stored(
    tier: Tier, prefix: str
) -> None:
    (k,) = keys(prefix, 1)
    assert await tier.set_many([item(k, 10, "ten")]) == [True]
    assert await tier.set_many([item(k, 9, "nine"), item(k, 10, "ten again")]) == [False, True]
    assert await tier.set_many([item(k, 11, "eleven")]) == [True]
    (env,) = await tier.get_many([k])
    assert env is not None and (env.value, env.as_of) == ("eleven", 11)


async def test_delete_many_removes_only_those_keys(tier: Tier, prefix: str) -> None:
    ks = keys(prefix, 3)
    await tier.set_many([item(k, 1, k) for k in ks])
    await tier.delete_many(ks[:2])
    assert [e.value if e else None for e in await tier.get_many(ks)] == [None, None, ks[2]]


async def test_each_item_keeps_its_own_expiry(tier: Tier, prefix: str) -> None:
    short, long = keys(prefix, 2)
    await tier.set_many([item(short, 1, "s", ttl_s=1.0), item(long, 1, "l", ttl_s=60.0)])
    await asyncio.sleep(2.1)  # memcached counts whole seconds
    assert [e.value if e else None for e in await tier.get_many([short, long])] == [None, "l"]


async def test_the_cache_over_one_backend_reads_what_it_wrote(
    single_tier_cache: MultiTierCache, prefix: str
) -> None:
    ks = keys(prefix, 3)
    written = await single_tier_cache.set_many(
        [Write(k, i, "default", 5) for i, k in enumerate(ks)]
    )
    name = single_tier_cache.tiers[0].name
    assert all(set(w) == {name} for w in written)
    hits = await single_tier_cache.get_many(ks)
    assert [(h.value, h.tier) if h else None for h in hits] == [(i, name) for i in range(3)]
    assert await single_tier_cache.set(ks[0], "old", data_type="default", as_of=4) == {}
    await single_tier_cache.delete(ks[1])
    assert await single_tier_cache.get(ks[1]) is None
