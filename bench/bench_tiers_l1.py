"""L1-hit ``get`` through the public async API, against cashews' ``mem://`` in the same run.

Goal (issue 3): >= 1,000,000 gets/s per process and >= 10x cashews ``mem://``.

    .venv/bin/python bench/bench_tiers_l1.py [--rounds 5] [--gets 300000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cashews import Cache

from tiers import MultiTierCache

KEYS = [f"virt:v2:market:ticker:15s:binance:S{i}/USDT" for i in range(1000)]


async def rate(get: Callable[[str], Awaitable[Any]], n: int) -> float:
    keys = KEYS
    size = len(keys)
    started = time.perf_counter()
    for i in range(n):
        await get(keys[i % size])
    return n / (time.perf_counter() - started)


async def main(rounds: int, n: int) -> None:
    ours = MultiTierCache.from_urls("memory://?max_entries=5000")
    for i, key in enumerate(KEYS):
        await ours.set(key, {"last": 100.0 + i, "bid": 99.9, "ask": 100.1}, data_type="tickers",
                       as_of=int(time.time() * 1000))  # fmt: skip
    theirs = Cache()
    theirs.setup("mem://?size=5000")
    for i, key in enumerate(KEYS):
        await theirs.set(key, {"last": 100.0 + i, "bid": 99.9, "ask": 100.1}, expire=60)
    assert (await ours.get(KEYS[3])).tier == "memory"  # type: ignore[union-attr]
    assert await theirs.get(KEYS[3]) is not None

    ours_rates, theirs_rates = [], []
    for r in range(rounds):
        ours_rates.append(await rate(ours.get, n))
        theirs_rates.append(await rate(theirs.get, n // 10))
        print(f"round {r + 1}: MultiTierCache L1 {ours_rates[-1]:>12,.0f} gets/s   "
              f"cashews mem:// {theirs_rates[-1]:>10,.0f} gets/s")  # fmt: skip
    a, b = statistics.median(ours_rates), statistics.median(theirs_rates)
    print(f"\nmedian of {rounds} rounds: MultiTierCache L1 {a:,.0f} gets/s, "
          f"cashews mem:// {b:,.0f} gets/s, ratio {a / b:.1f}x")  # fmt: skip
    print(f"goal >= 1,000,000 gets/s: {'met' if a >= 1e6 else 'NOT met'}; "
          f"goal >= 10x cashews: {'met' if a / b >= 10 else 'NOT met'}")  # fmt: skip
    await ours.close()
    await theirs.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--gets", type=int, default=300_000)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.gets))
