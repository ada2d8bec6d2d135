"""The Redis tier's batched monotonic write: many keys per EVALSHA, one answer per key in
the order given, across chunk boundaries, after the server lost its scripts, and with a key
that is someone else's in the middle of a chunk."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from tests._servers import PrivateServer
from tiers import RedisTier
from tiers._envelope import decode, encode_body, now_ms
from tiers._protocol import StoreItem
from tiers._redis import SET_IF_NEWER_SHA

pytestmark = pytest.mark.integration


def item(key: str, as_of: int, ttl_s: float = 60.0, value: object = None) -> StoreItem:
    body = encode_body(
        key, as_of if value is None else value, as_of=as_of, written_at=1, source="t"
    )
    return StoreItem(key, body, ttl_s, now_ms() + int(ttl_s * 1000))


@pytest_asyncio.fixture(loop_scope="function")
async def plain(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest_asyncio.fixture(loop_scope="function")
async def redis_tier(redis_url: str) -> AsyncIterator[Callable[..., RedisTier]]:
    """Makes Redis tiers on the shared server (options as ``RedisTier`` takes them) and
    closes them at the end."""
    made: list[RedisTier] = []

    def make(**options: Any) -> RedisTier:
        made.append(RedisTier(redis_url, **options))
        return made[-1]

    yield make
    for tier in made:
        await tier.close()


async def stored(client: aioredis.Redis, keys: list[str]) -> list[int | None]:
    return [None if raw is None else decode(raw).as_of for raw in await client.mget(keys)]


@pytest.mark.parametrize("chunk", [1, 3, 4, 256])
async def test_results_follow_the_items_across_chunks(
    redis_tier: Callable[..., RedisTier], plain: aioredis.Redis, prefix: str, chunk: int
) -> None:
    """Ten keys, every other one already holding a newer value: the answers line up with
    the items whatever the chunking, and only the older ones were kept out."""
    keys = [f"{prefix}:v2:misc:value:1m:k{i}" for i in range(10)]
    tier = redis_tier(max_keys_per_script=chunk)
    assert await tier.set_many([item(k, 100) for k in keys[::2]]) == [True] * 5
    answers = await tier.set_many([item(k, 50 + i) for i, k in enumerate(keys)])
    assert answers == [False, True] * 5
    assert await stored(plain, keys) == [100, 51, 100, 53, 100, 55, 100, 57, 100, 59]
    # equal as_of is not older: it replaces (the single-key script's rule)
    assert await tier.set_many([item(keys[0], 100, value="again")]) == [True]


async def test_each_key_gets_its_own_expiry(
    redis_tier: Callable[..., RedisTier], plain: aioredis.Redis, prefix: str
) -> None:
    keys = [f"{prefix}:v2:misc:value:1m:t{i}" for i in range(5)]
    tier = redis_tier(max_keys_per_script=2)
    ttls = [31.0, 62.5, 120.0, 300.0, 0.0004]  # the last rounds up to 1 ms, never 0
    assert (
        await tier.set_many([item(k, 1, t) for k, t in zip(keys, ttls, strict=True)]) == [True] * 5
    )
    left = [await plain.pttl(k) for k in keys[:4]]
    for ms, ttl in zip(left, ttls, strict=False):
        assert ttl * 1000 - 2_000 < ms <= ttl * 1000


async def test_the_same_key_twice_in_a_batch_behaves_like_two_sets_in_order(
    redis_tier: Callable[..., RedisTier], plain: aioredis.Redis, prefix: str
) -> None:
    key = f"{prefix}:v2:misc:value:1m:twice"
    other = [f"{prefix}:v2:misc:value:1m:o{i}" for i in range(3)]
    tier = redis_tier(max_keys_per_script=2)
    # newer then older: the older one (in the next chunk) is refused
    batch = [item(key, 20), item(other[0], 1), item(key, 10), item(other[1], 1)]
    assert await tier.set_many(batch) == [True, True, False, True]
    # older then newer within one chunk: both stored, the newer last
    assert await tier.set_many([item(key, 21), item(key, 22), item(other[2], 1)]) == [
        True, True, True,
    ]  # fmt: skip
    assert await stored(plain, [key]) == [22]


async def test_someone_elses_key_in_a_chunk_refuses_only_that_key(
    redis_tier: Callable[..., RedisTier], plain: aioredis.Redis, prefix: str
) -> None:
    keys = [f"{prefix}:v2:misc:value:1m:w{i}" for i in range(4)]
    await plain.rpush(keys[1], "not ours")  # GET on a list: WRONGTYPE
    await plain.expire(keys[1], 60)
    tier = redis_tier(max_keys_per_script=4)
    with capture_logs() as logs:
        assert await tier.set_many([item(k, 5) for k in keys]) == [True, False, True, True]
    refused = [e for e in logs if e["event"] == "redis_set_refused"]
    assert [e["key"] for e in refused] == [keys[1]] and "WRONGTYPE" in refused[0]["error"]
    assert await plain.type(keys[1]) == b"list"
    assert await stored(plain, [keys[0], keys[2], keys[3]]) == [5, 5, 5]


async def test_a_server_that_lost_its_scripts_gets_them_again(
    private_server: Callable[..., PrivateServer], prefix: str
) -> None:
    """SCRIPT FLUSH (as after a restart or failover): the next batch is refused with
    NOSCRIPT chunk by chunk, the script is loaded once and every chunk is sent again."""
    server = private_server("redis")
    keys = [f"{prefix}:v2:misc:value:1m:n{i}" for i in range(7)]
    tier = RedisTier(server.url, max_keys_per_script=3)
    admin = aioredis.Redis.from_url(server.url)
    try:
        assert await tier.set_many([item(k, 10) for k in keys]) == [True] * 7
        await admin.script_flush()
        assert await admin.script_exists(SET_IF_NEWER_SHA) == [False]
        answers = await tier.set_many([item(k, 10 + (i % 2) * 10 - 5) for i, k in enumerate(keys)])
        assert answers == [False, True, False, True, False, True, False]
        assert await admin.script_exists(SET_IF_NEWER_SHA) == [True]
        assert [decode(r).as_of for r in await admin.mget(keys)] == [10, 15] * 3 + [10]
    finally:
        await admin.aclose()
        await tier.close()


async def test_large_values_split_a_chunk_by_size(
    redis_tier: Callable[..., RedisTier], plain: aioredis.Redis, prefix: str
) -> None:
    keys = [f"{prefix}:v2:misc:value:1m:big{i}" for i in range(5)]
    tier = redis_tier()
    big = "x" * 400_000  # five of them exceed one script call's byte budget
    items = [item(k, 3, value=big) for k in keys]
    assert len(tier._chunks(items)) == 3
    assert await tier.set_many(items) == [True] * 5
    assert [decode(r).value for r in await plain.mget(keys)] == [big] * 5
