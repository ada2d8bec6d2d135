"""L1 eviction policy: hit ratio on Zipf(s=1.1) reads over 10,000 keys with 1,500 entries,
and the speed of each policy's hit path, measured in the same run.

Candidates: W-TinyLFU (``theine``), LRU and LFU (``cachetools``, LRU also with TTL), and
warmfleet's own ``MemoryTier`` (OrderedDict LRU + per-entry TTL + a miss-fed frequency
admission filter; also with the filter off), each used read-through: a miss inserts the key.
The hit path is timed on 100 hot keys; L1's own hit path through ``MultiTierCache.get`` is
in ``bench_tiers_l1.py``.

    .venv/bin/python bench/bench_tiers_eviction.py [--reads 300000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import cachetools
from theine import Cache as TheineCache

from tiers import Envelope, MemoryTier

N_KEYS, CAPACITY, S = 10_000, 1_500, 1.1


def zipf_reads(n: int, seed: int) -> list[str]:
    keys = [f"virt:v2:market:ticker:15s:ex:S{i}" for i in range(N_KEYS)]
    weights = list(itertools.accumulate(1.0 / (rank**S) for rank in range(1, N_KEYS + 1)))
    rng = random.Random(seed)
    ranks = list(range(N_KEYS))
    rng.shuffle(ranks)  # popularity unrelated to key order
    return [keys[ranks[i]] for i in rng.choices(range(N_KEYS), cum_weights=weights, k=n)]


Policy = tuple[Callable[[str], Any], Callable[[str], None]]  # (get -> None on miss, insert)


def own(admission: bool) -> Policy:
    tier = MemoryTier(CAPACITY, admission=admission)
    env = Envelope({"v": 1}, 1, 1)

    def get(key: str) -> Any:
        hit = tier.lookup(key)
        if hit is None:
            tier.note_miss(key)  # what MultiTierCache does on an L1 miss
        return hit

    def insert(key: str) -> None:
        tier.put(key, env, 60.0)

    return get, insert


def cachetools_policy(cache: cachetools.Cache[str, Any]) -> Policy:
    def insert(key: str) -> None:
        cache[key] = 1

    return cache.get, insert


def theine_policy() -> Policy:
    cache: TheineCache[str, int] = TheineCache(CAPACITY)
    ttl = timedelta(seconds=60)

    def get(key: str) -> Any:
        value, ok = cache.get(key)
        return value if ok else None

    def insert(key: str) -> None:
        cache.set(key, 1, ttl)

    return get, insert


POLICIES: dict[str, Callable[[], Policy]] = {
    "own MemoryTier (LRU+TTL)": lambda: own(admission=True),
    "own, admission off": lambda: own(admission=False),
    "cachetools LRUCache": lambda: cachetools_policy(cachetools.LRUCache(CAPACITY)),
    "cachetools TTLCache": lambda: cachetools_policy(cachetools.TTLCache(CAPACITY, ttl=60)),
    "cachetools LFUCache": lambda: cachetools_policy(cachetools.LFUCache(CAPACITY)),
    "theine W-TinyLFU": theine_policy,
}


def hit_ratio(policy: Policy, reads: list[str]) -> float:
    get, insert = policy
    warm = len(reads) // 5  # the first fifth warms the cache and is not counted
    hits = 0
    for i, key in enumerate(reads):
        if get(key) is None:
            insert(key)
        elif i >= warm:
            hits += 1
    return hits / (len(reads) - warm)


def hit_path_rate(policy: Policy, n: int = 200_000) -> float:
    get, insert = policy
    hot = [f"hot{i}" for i in range(100)]
    for key in hot:
        insert(key)
    started = time.perf_counter()
    for i in range(n):
        get(hot[i % 100])
    return n / (time.perf_counter() - started)


def main(reads_n: int, rounds: int) -> None:
    ratios: dict[str, list[float]] = {name: [] for name in POLICIES}
    rates: dict[str, list[float]] = {name: [] for name in POLICIES}
    for r in range(rounds):
        reads = zipf_reads(reads_n, seed=r)
        for name, make in POLICIES.items():
            ratios[name].append(hit_ratio(make(), reads))
            rates[name].append(hit_path_rate(make()))
    base = statistics.median(ratios["own MemoryTier (LRU+TTL)"])
    base_rate = statistics.median(rates["own MemoryTier (LRU+TTL)"])
    print(f"Zipf s={S}, {N_KEYS:,} keys, {CAPACITY:,} entries, {reads_n:,} reads x {rounds} rounds"
          " (medians)\n")  # fmt: skip
    print(f"{'policy':<28}{'hit ratio':>10}{'vs own':>9}{'hit path gets/s':>18}{'vs own':>9}")
    for name in POLICIES:
        ratio, rate = statistics.median(ratios[name]), statistics.median(rates[name])
        print(
            f"{name:<28}{ratio:>10.2%}{ratio - base:>+9.2%}{rate:>18,.0f}{rate / base_rate:>8.2f}x"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    main(args.reads, args.rounds)
