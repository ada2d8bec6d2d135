"""L1-hit ``get`` through the public async API, against cashews' ``mem://`` in the same run.

Goals: >= 3,000,000 gets/s per process (issue 11; issue 3 asked 1 M) and >= 10x cashews
``mem://``. Besides wall-clock rates it prints gets per CPU-second of this process
(``time.process_time``): on a shared, busy machine the wall figure swings with what else
runs, the CPU figure much less, so compare runs (before/after a change) by that one.

    .venv/bin/python bench/bench_tiers_l1.py [--rounds 5] [--gets 300000] [--against DIR ...]

``--against DIR`` (repeatable) compares with other checkouts (each with its own ``.venv``,
e.g. main, or the commit before a change): every round runs the L1 probe once in a fresh
process per tree, interleaved (this tree, DIR, this tree, ...), and the summary gives each
tree's median gets per CPU-second and its ratio to this tree's, round by round — the A/B a
busy machine allows.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
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


#: run by each tree's own interpreter, with that tree first on sys.path: the API both sides
#: share (from_urls, set, get), gets per CPU-second of one pass, best of three
PROBE = """
import asyncio, sys, time
sys.path.insert(0, sys.argv[1])
from tiers import MultiTierCache
KEYS = [f"virt:v2:market:ticker:15s:binance:S{i}/USDT" for i in range(1000)]
async def main(n):
    cache = MultiTierCache.from_urls("memory://?max_entries=5000")
    for i, key in enumerate(KEYS):
        await cache.set(key, {"last": 100.0 + i}, data_type="tickers",
                        as_of=int(time.time() * 1000))
    assert (await cache.get(KEYS[3])).tier == "memory"
    get, keys, size, best = cache.get, KEYS, len(KEYS), 0.0
    for _ in range(3):
        cpu = time.process_time()
        for i in range(n):
            await get(keys[i % size])
        best = max(best, n / max(time.process_time() - cpu, 1e-9))
    print(best)
asyncio.run(main(int(sys.argv[2])))
"""


def probe(tree: Path, n: int) -> float:
    python = sys.executable if tree == HERE else str(tree / ".venv" / "bin" / "python")
    out = subprocess.run(
        [python, "-c", PROBE, str(tree), str(n)], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


HERE = Path(__file__).resolve().parents[1]


def against(trees: list[Path], rounds: int, n: int) -> None:
    names = {HERE: "this tree", **{t: str(t) for t in trees}}
    rates: dict[Path, list[float]] = {t: [] for t in names}
    for r in range(rounds):
        for tree in names:
            rates[tree].append(probe(tree, n))
        line = "  ".join(f"{names[t]} {rates[t][-1]:>11,.0f}" for t in names)
        print(f"A/B round {r + 1}: L1 gets per CPU-second: {line}", flush=True)
    ours = statistics.median(rates[HERE])
    print(f"\nA/B medians of {rounds} interleaved rounds (gets per CPU-second, best of 3 each):")
    for tree in names:
        per_round = [a / b for a, b in zip(rates[HERE], rates[tree], strict=True)]
        print(
            f"  {names[tree]:<24} {statistics.median(rates[tree]):>11,.0f}   this tree / it: "
            f"{ours / statistics.median(rates[tree]):.2f}x (per-round median "
            f"{statistics.median(per_round):.2f}x, range {min(per_round):.2f}-{max(per_round):.2f})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--gets", type=int, default=300_000)
    parser.add_argument(
        "--against", type=Path, action="append", default=[], help="another checkout (its .venv)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.gets))
    if args.against:
        print()
        against([t.resolve() for t in args.against], args.rounds, args.gets)
