"""The Memcached tier's batched monotonic write and multi-get on the shared server: replies
cut from large reads (values bigger than one read, more keys than one ``gets`` command),
answers in item order, older writes refused, the connection reusable afterwards."""

from __future__ import annotations

import pytest

from tiers import MemcachedTier
from tiers._envelope import encode_body, now_ms
from tiers._protocol import StoreItem

pytestmark = pytest.mark.integration


def item(key: str, as_of: int, value: object) -> StoreItem:
    body = encode_body(key, value, as_of=as_of, written_at=1, source="t")
    return StoreItem(key, body, 60.0, now_ms() + 60_000)


async def test_a_big_batch_with_big_values_round_trips_in_order(
    memcached_addr: str, prefix: str
) -> None:
    keys = [f"{prefix}:v2:misc:value:1m:m{i}" for i in range(250)]  # > one gets command
    sizes = [10, 70_000, 3, 200_000, 1] * 50  # some values span several reads
    values = [f"{i}:" + "v" * size for i, size in enumerate(sizes)]
    tier = MemcachedTier([memcached_addr], pool_size=1)  # one connection: reuse is tested
    try:
        assert (
            await tier.set_many([item(k, 10, v) for k, v in zip(keys, values, strict=True)])
            == [True] * 250
        )
        # every third one older than what is stored: refused; the rest replace (cas)
        again = [item(k, 9 if i % 3 == 0 else 11, values[i].upper()) for i, k in enumerate(keys)]
        answers = await tier.set_many(again)
        assert answers == [i % 3 != 0 for i in range(250)]
        found = await tier.get_many([*keys, f"{prefix}:v2:misc:value:1m:absent"])
        assert [e.value if e else None for e in found] == [
            v if i % 3 == 0 else v.upper() for i, v in enumerate(values)
        ] + [None]
        await tier.delete_many(keys)
        assert await tier.get_many(keys[:3]) == [None] * 3
    finally:
        await tier.close()
