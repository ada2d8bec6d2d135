"""L1-hit ``get`` through the public async API, against cashews' ``mem://`` in the same run.

Goals: >= 3,000,000 gets/s per process (issue 11; issue 3 asked 1 M) and >= 10x cashews
``mem://``. Besides wall-clock rates it prints gets per CPU-second of this process
(``time.process_time``): on a shared, busy machine the wall figure swings with what else
runs, the CPU figure much less, so compare runs (before/after a change) by that one.

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


async def rate(get: Callable[[str], Awaitable[Any]], n: int) -> tuple[float, float]:
    """(gets per wall second, gets per CPU second of this process)."""
    keys = KEYS
    size = len(keys)
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        await get(keys[i % size])
    return n / (time.perf_counter() - started), n / max(time.process_time() - cpu, 1e-9)


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

    ours_rates, theirs_rates, ours_cpu, theirs_cpu = [], [], [], []
    for r in range(rounds):
        wall, cpu = await rate(ours.get, n)
        ours_rates.append(wall)
        ours_cpu.append(cpu)
        wall, cpu = await rate(theirs.get, n // 10)
        theirs_rates.append(wall)
        theirs_cpu.append(cpu)
        print(f"round {r + 1}: MultiTierCache L1 {ours_rates[-1]:>12,.0f} gets/s "
              f"({ours_cpu[-1]:>12,.0f}/cpu-s)   cashews mem:// {theirs_rates[-1]:>10,.0f} "
              f"gets/s ({theirs_cpu[-1]:>10,.0f}/cpu-s)")  # fmt: skip
    a, b = statistics.median(ours_rates), statistics.median(theirs_rates)
    ac, bc = statistics.median(ours_cpu), statistics.median(theirs_cpu)
    print(f"\nmedian of {rounds} rounds: MultiTierCache L1 {a:,.0f} gets/s, "
          f"cashews mem:// {b:,.0f} gets/s, ratio {a / b:.1f}x")  # fmt: skip
    print(f"per CPU-second: MultiTierCache L1 {ac:,.0f} gets, cashews mem:// {bc:,.0f} gets, "
          f"ratio {ac / bc:.1f}x")  # fmt: skip
    print(f"goal >= 3,000,000 gets/s: {'met' if a >= 3e6 else 'NOT met'} "
          f"(per CPU-second: {'met' if ac >= 3e6 else 'NOT met'}); "
          f"goal >= 10x cashews: {'met' if a / b >= 10 else 'NOT met'}")  # fmt: skip
    await ours.close()
    await theirs.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--gets", type=int, default=300_000)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.gets))
