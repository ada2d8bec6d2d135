"""100 concurrent readers on L3-only keys: ``MultiTierCache`` (Redis tier only, so every
read goes to Redis) with its micro-batching into MGET, against plain ``redis.asyncio`` GETs
and against our Redis tier called once per read (same codec, no batching) — the last
comparison isolates what batching gains.

Goal (issue 3): >= 50,000 gets/s per process with batching.

    .venv/bin/python bench/bench_tiers_l3.py [--readers 100] [--gets 60000] [--rounds 3]
        [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._args import options
from tiers import MultiTierCache, RedisTier, Write

N_KEYS = 10_000


async def rate(
    get: Callable[[str], Awaitable[Any]], keys: list[str], readers: int, total: int
) -> float:
    per_reader = total // readers
    misses = 0

    async def reader(seed: int) -> None:
        nonlocal misses
        rng = random.Random(seed)
        for _ in range(per_reader):
            if await get(keys[rng.randrange(len(keys))]) is None:
                misses += 1

    started = time.perf_counter()
    await asyncio.gather(*(reader(i) for i in range(readers)))
    elapsed = time.perf_counter() - started
    assert misses == 0, f"{misses} misses: the keys should all be in Redis"
    return per_reader * readers / elapsed


async def main(readers: int, total: int, rounds: int, redis_url: str) -> None:
    run = uuid.uuid4().hex[:8]
    keys = [f"b3{run}:v2:market:ticker:15s:ex:S{i}" for i in range(N_KEYS)]
    cache = MultiTierCache.from_urls(redis_url)
    for start in range(0, N_KEYS, 1000):
        await cache.set_many(
            [Write(k, {"last": 1.0 + start + j}, "candles", int(time.time() * 1000))
             for j, k in enumerate(keys[start : start + 1000])]
        )  # fmt: skip
    plain = aioredis.Redis.from_url(redis_url)
    tier = RedisTier(redis_url)

    async def unbatched(key: str) -> Any:
        (env,) = await tier.get_many([key])
        return env

    figures: dict[str, list[float]] = {"batched": [], "plain": [], "unbatched": []}
    for r in range(rounds):
        figures["plain"].append(await rate(plain.get, keys, readers, total))
        figures["unbatched"].append(await rate(unbatched, keys, readers, total))
        figures["batched"].append(await rate(cache.get, keys, readers, total))
        print(f"round {r + 1}: MultiTierCache (batched) {figures['batched'][-1]:>9,.0f} gets/s | "
              f"plain redis.asyncio GET {figures['plain'][-1]:>9,.0f} | "
              f"our tier, one read per call {figures['unbatched'][-1]:>9,.0f}")  # fmt: skip
    overall = cache.stats()["overall"]
    keys_per_batch = overall["batched_keys"] / max(overall["batches"], 1)
    b, p, u = (statistics.median(figures[n]) for n in ("batched", "plain", "unbatched"))
    print(f"\n{readers} concurrent readers, {total:,} gets per round, {rounds} rounds, medians:")
    print(f"  MultiTierCache, batched into MGET  {b:>9,.0f} gets/s  "
          f"({keys_per_batch:.1f} keys per MGET)")  # fmt: skip
    print(f"  plain redis.asyncio GET            {p:>9,.0f} gets/s  -> batched is {b / p:.1f}x")
    print(f"  our Redis tier, one read per call  {u:>9,.0f} gets/s  -> batching gains {b / u:.1f}x")
    print(f"goal >= 50,000 gets/s: {'met' if b >= 50_000 else 'NOT met'}")
    await plain.delete(*keys)
    await plain.aclose()
    await tier.close()
    await cache.close()


if __name__ == "__main__":
    args = options(__doc__, readers=100, gets=60_000, rounds=3, redis="redis://127.0.0.1:6379/0")
    asyncio.run(main(args.readers, args.gets, args.rounds, args.redis))
