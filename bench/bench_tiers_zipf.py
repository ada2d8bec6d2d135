"""Zipf(s=1.1) reads over 10,000 keys through all three real tiers (L1 sized 1,500 entries),
against the old ``DirectCacheAdapter`` (Memcached primary, Redis fallback, no L1) in the
same run: hit rate per tier, mean and p99 read latency.

Goal (issue 3): >= 99 % overall hit rate and >= 10x lower mean latency than the baseline.

    .venv/bin/python bench/bench_tiers_zipf.py [--reads 30000] [--rounds 3] [--readers 1]
        [--memcached memcached://127.0.0.1:11211] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import statistics
import time
import uuid
from collections import Counter
from typing import Any, Protocol

from tiers import DirectCacheAdapter, Hit, MultiTierCache, Write

N_KEYS, L1_ENTRIES, S = 10_000, 1_500, 1.1


class Reader(Protocol):
    async def get(self, key: str, *, max_age: float | None = None) -> Hit | None: ...


def zipf_reads(keys: list[str], n: int, seed: int) -> list[str]:
    weights = list(itertools.accumulate(1.0 / (rank**S) for rank in range(1, len(keys) + 1)))
    rng = random.Random(seed)
    order = keys[:]
    rng.shuffle(order)
    return rng.choices(order, cum_weights=weights, k=n)


async def measure(cache: Reader, reads: list[str], readers: int = 1) -> dict[str, Any]:
    """``readers`` concurrent readers share ``reads``; per-read latency as each reader sees it."""
    latencies: list[int] = []
    tiers: Counter[str] = Counter()
    clock = time.perf_counter_ns

    async def reader(share: list[str]) -> None:
        for key in share:
            started = clock()
            hit = await cache.get(key)
            latencies.append(clock() - started)
            tiers[hit.tier if hit is not None else "miss"] += 1

    started = time.perf_counter()
    await asyncio.gather(*(reader(reads[i::readers]) for i in range(readers)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "mean_us": statistics.fmean(latencies) / 1000,
        "p99_us": latencies[int(len(latencies) * 0.99)] / 1000,
        "hit_rate": 1 - tiers["miss"] / len(reads),
        "tiers": {t: n / len(reads) for t, n in tiers.items()},
        "reads_per_s": len(reads) / elapsed,
    }


def value(i: int) -> dict[str, Any]:
    return {"symbol": f"S{i}/USDT", "last": 100.0 + i, "bid": 99.5, "ask": 100.5, "vol": 1e6}


async def main(reads_n: int, rounds: int, readers: int, memcached_url: str, redis_url: str) -> None:
    run = uuid.uuid4().hex[:8]
    ours_keys = [f"bz{run}:v2:market:ticker:15s:ex:S{i}" for i in range(N_KEYS)]
    direct_keys = [f"bd{run}:v2:market:ticker:15s:ex:S{i}" for i in range(N_KEYS)]
    now = int(time.time() * 1000)
    writer = MultiTierCache.from_urls(memcached_url, redis_url)  # the agents, elsewhere
    for start in range(0, N_KEYS, 500):
        await writer.set_many(
            [
                Write(k, value(start + j), "tickers", now)
                for j, k in enumerate(ours_keys[start : start + 500])
            ]
        )
    await writer.close()
    direct = DirectCacheAdapter.from_urls(memcached_url, redis_url)
    for i, k in enumerate(direct_keys):
        await direct.set(k, value(i), data_type="tickers", as_of=now)

    results: dict[str, list[dict[str, Any]]] = {"ours": [], "direct": []}
    for r in range(rounds):
        reads = zipf_reads(list(range(N_KEYS)), reads_n + reads_n // 3, seed=r)  # type: ignore[arg-type]
        warm, timed = reads[: reads_n // 3], reads[reads_n // 3 :]
        ours = MultiTierCache.from_urls(
            f"memory://?max_entries={L1_ENTRIES}", memcached_url, redis_url
        )
        await measure(ours, [ours_keys[i] for i in warm], readers)  # steady state first
        await ours.drain()
        results["ours"].append(await measure(ours, [ours_keys[i] for i in timed], readers))
        await ours.close()
        results["direct"].append(await measure(direct, [direct_keys[i] for i in timed], readers))
        o, d = results["ours"][-1], results["direct"][-1]
        print(f"round {r + 1}: MultiTierCache mean {o['mean_us']:7.1f} us "
              f"p99 {o['p99_us']:7.1f} us hit {o['hit_rate']:.2%} | "
              f"Direct mean {d['mean_us']:7.1f} us p99 {d['p99_us']:7.1f} us "
              f"hit {d['hit_rate']:.2%}")  # fmt: skip
    await direct.close()

    def med(name: str, field: str) -> float:
        return statistics.median(x[field] for x in results[name])

    print(f"\nZipf s={S}, {N_KEYS:,} keys, L1 {L1_ENTRIES:,} entries, {readers} concurrent "
          f"reader(s), {reads_n:,} timed reads x {rounds} rounds, medians:")  # fmt: skip
    for name, label in (("ours", "MultiTierCache"), ("direct", "DirectCacheAdapter")):
        share = {
            t: statistics.median(x["tiers"].get(t, 0.0) for x in results[name])
            for t in ("memory", "memcached", "redis", "miss")
        }
        print(f"  {label:<19} mean {med(name, 'mean_us'):8.1f} us  "
              f"p99 {med(name, 'p99_us'):8.1f} us  hit rate {med(name, 'hit_rate'):.2%}  by tier: "
              + ", ".join(f"{t} {v:.1%}" for t, v in share.items())
              + f"  ({med(name, 'reads_per_s'):,.0f} reads/s)")  # fmt: skip
    ratio = med("direct", "mean_us") / med("ours", "mean_us")
    print(f"  mean latency ratio Direct / MultiTierCache: {ratio:.1f}x "
          f"(p99 ratio {med('direct', 'p99_us') / med('ours', 'p99_us'):.1f}x)")  # fmt: skip
    print(f"goal >= 99 % hit rate: {'met' if med('ours', 'hit_rate') >= 0.99 else 'NOT met'}; "
          f"goal >= 10x lower mean latency: {'met' if ratio >= 10 else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--readers", type=int, default=1, help="concurrent readers (e.g. 32)")
    parser.add_argument("--memcached", default="memcached://127.0.0.1:11211")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    asyncio.run(main(args.reads, args.rounds, args.readers, args.memcached, args.redis))
