"""Batch writes through all three real tiers: ``MultiTierCache.set_many`` of N writes (three
data types per symbol, as the analytics agents write them) to memory + Memcached + Redis,
against what the servers cost by themselves in the same run: the same envelopes as a plain
pipelined Redis ``SET ... PX`` plus a pipelined memcached ``set`` per key, no
compare-and-set, no L1, no TTL policy.

Every batch rewrites the same keys with a newer ``as_of`` (the worker's steady state: the
keys exist, so Redis compares and Memcached does ``gets``/``cas``). The first batch of each
kind is a warm-up and not counted.

Why: the analytics worker must sustain >= 20,000 ticker events/s into all three tiers on
the 2-core box; each of its batches ends in ``set_many`` of 500-5,000 writes.

    .venv/bin/python bench/bench_tiers_write.py [--writes 2000] [--batches 10] [--rounds 5]
        [--memcached 127.0.0.1:11211] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import asyncio
import math
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._args import options
from tiers import MultiTierCache, Write

DATA_TYPES = ("tickers", "signals", "volatility")


def make_writes(run: str, n: int, as_of: int) -> list[Write]:
    writes = []
    for i in range(n):
        data_type = DATA_TYPES[i % 3]
        symbol = f"S{i // 3:05d}/USDT"
        value = {
            "exchange": "binance", "symbol": symbol, "last": 100.0 + i, "bid": 99.95 + i,
            "ask": 100.05 + i, "volume": 12345.678 + i, "rsi": 51.2, "ema_fast": 100.1,
            "ema_slow": 99.8, "signals": ["ema_cross_up"], "as_of_ms": as_of,
        }  # fmt: skip
        key = f"b4{run}:v2:analysis:{data_type}:15s:binance:{symbol}"
        writes.append(Write(key, value, data_type, as_of, 0.01 + (i % 7) / 1000))
    return writes


class Plain:
    """No compare-and-set: one pipelined Redis SET PX and one pipelined memcached ``set``
    per key, the two servers written concurrently."""

    def __init__(self, redis_url: str, memcached: str) -> None:
        self.redis = aioredis.Redis.from_url(redis_url)
        self.host, _, port = memcached.rpartition(":")
        self.port = int(port)
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def set_many(self, writes: list[Write], ttl_s: float = 60.0) -> None:
        now = int(time.time() * 1000)
        expires = now + int(ttl_s * 1000)
        bodies = [
            orjson.dumps(
                {"a": w.as_of, "e": expires, "w": now, "s": "bench", "x": "wf1", "v": w.value}
            )
            for w in writes
        ]
        await asyncio.gather(self._redis(writes, bodies, ttl_s), self._memcached(writes, bodies))

    async def _redis(self, writes: list[Write], bodies: list[bytes], ttl_s: float) -> None:
        pipe = self.redis.pipeline(transaction=False)
        px = math.ceil(ttl_s * 1000)
        for w, body in zip(writes, bodies, strict=True):
            pipe.set(w.key, body, px=px)
        await pipe.execute()

    async def _memcached(self, writes: list[Write], bodies: list[bytes]) -> None:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        writer.write(
            b"".join(
                b"set %b 0 60 %d\r\n%b\r\n" % (w.key.encode(), len(body), body)
                for w, body in zip(writes, bodies, strict=True)
            )
        )
        await writer.drain()
        for _ in writes:
            line = await reader.readline()
            assert line == b"STORED\r\n", line

    async def delete(self, keys: list[str]) -> None:
        await self.redis.delete(*keys)
        if self.streams is not None:
            writer = self.streams[1]
            writer.write(b"".join(b"delete %b noreply\r\n" % k.encode() for k in keys))
            await writer.drain()

    async def close(self) -> None:
        await self.redis.aclose()
        if self.streams is not None:
            self.streams[1].close()


async def measure(
    write: Callable[[list[Write]], Awaitable[object]], run: str, n: int, batches: int, first: int
) -> tuple[float, float]:
    """(writes/s, p50 ms per batch) over ``batches`` batches after one warm-up batch."""
    batch = [make_writes(run, n, first + b) for b in range(batches + 1)]
    await write(batch[0])
    times: list[float] = []
    cpu = time.process_time()
    for writes in batch[1:]:
        started = time.perf_counter()
        await write(writes)
        times.append(time.perf_counter() - started)
    CPU_US_PER_WRITE.append((time.process_time() - cpu) * 1e6 / (n * batches))
    return n * batches / sum(times), statistics.median(times) * 1000


#: this process's CPU microseconds per write, per measure() call, in call order: steadier
#: than wall time on a busy machine (the servers' own CPU is not in it)
CPU_US_PER_WRITE: list[float] = []


async def main(
    n: int, batches: int, rounds: int, memcached: str, redis_url: str
) -> None:  # fmt: skip
    run = uuid.uuid4().hex[:8]
    cache = MultiTierCache.from_urls(
        f"memory://?max_entries={max(2 * n, 1000)}", f"memcached://{memcached}", redis_url,
        source="bench", write_timeout_s=5.0,
    )  # fmt: skip
    # the same without the invalidation bus: what announcing each batch costs
    quiet = MultiTierCache.from_urls(
        f"memory://?max_entries={max(2 * n, 1000)}", f"memcached://{memcached}", redis_url,
        source="bench", write_timeout_s=5.0, invalidation_channel=None,
    )  # fmt: skip
    plain = Plain(redis_url, memcached)
    as_of = int(time.time() * 1000)

    async def ours(writes: list[Write]) -> None:
        answers = await cache.set_many(writes, warm_interval=15.0)
        assert all(len(a) == 3 for a in answers), "every write should land in every tier"

    async def ours_quiet(writes: list[Write]) -> None:
        answers = await quiet.set_many(writes, warm_interval=15.0)
        assert all(len(a) == 3 for a in answers), "every write should land in every tier"

    assert await cache.start(), "the bus did not subscribe"
    rates: dict[str, list[float]] = {"ours": [], "plain": [], "quiet": []}
    p50s: dict[str, list[float]] = {"ours": [], "plain": [], "quiet": []}
    cpu: dict[str, list[float]] = {"ours": [], "quiet": []}
    for r in range(rounds):
        base = as_of + r * 10 * (batches + 1)
        rate, p50 = await measure(ours, run, n, batches, base)
        rates["ours"].append(rate)
        p50s["ours"].append(p50)
        cpu["ours"].append(CPU_US_PER_WRITE[-1])
        rate, p50 = await measure(ours_quiet, f"{run}q", n, batches, base)
        rates["quiet"].append(rate)
        p50s["quiet"].append(p50)
        cpu["quiet"].append(CPU_US_PER_WRITE[-1])
        rate, p50 = await measure(plain.set_many, f"{run}p", n, batches, base)
        rates["plain"].append(rate)
        p50s["plain"].append(p50)
        print(f"round {r + 1}: set_many {rates['ours'][-1]:>9,.0f} writes/s "
              f"(p50 {p50s['ours'][-1]:6.1f} ms/batch) | plain SET PX + memcached set "
              f"{rates['plain'][-1]:>9,.0f} writes/s "
              f"(p50 {p50s['plain'][-1]:6.1f} ms) | without the bus "
              f"{rates['quiet'][-1]:>9,.0f} writes/s")  # fmt: skip
    o, p = statistics.median(rates["ours"]), statistics.median(rates["plain"])
    op50, pp50 = statistics.median(p50s["ours"]), statistics.median(p50s["plain"])
    print(f"\n{n:,} writes per batch ({', '.join(DATA_TYPES)}), {batches} batches per round, "
          f"{rounds} rounds, medians:")  # fmt: skip
    print(f"  MultiTierCache.set_many, 3 tiers, monotonic  {o:>9,.0f} writes/s  "
          f"p50 {op50:6.1f} ms/batch  ({op50 * 1000 / n:.1f} us/write)")  # fmt: skip
    print(f"  plain SET PX + memcached set, no CAS         {p:>9,.0f} writes/s  "
          f"p50 {pp50:6.1f} ms/batch  -> set_many takes {p / o:.2f}x "
          f"the servers' time alone")  # fmt: skip
    q = statistics.median(rates["quiet"])
    print(f"  set_many without the invalidation bus        {q:>9,.0f} writes/s  "
          f"p50 {statistics.median(p50s['quiet']):6.1f} ms/batch  -> the bus costs "
          f"{q / o:.2f}x")  # fmt: skip
    co, cq = statistics.median(cpu["ours"]), statistics.median(cpu["quiet"])
    print(f"  client CPU per write: {co:.1f} us with the bus, {cq:.1f} us without "
          f"-> {co / cq:.2f}x")  # fmt: skip
    keys = [w.key for w in make_writes(run, n, 0)]
    await cache.tiers[1].delete_many(keys)
    await cache.tiers[2].delete_many(keys)
    quiet_keys = [w.key for w in make_writes(f"{run}q", n, 0)]
    await quiet.tiers[1].delete_many(quiet_keys)
    await quiet.tiers[2].delete_many(quiet_keys)
    await quiet.close()
    await plain.delete([w.key for w in make_writes(f"{run}p", n, 0)])
    await plain.close()
    await cache.close()


if __name__ == "__main__":
    args = options(__doc__, writes=2000, batches=10, rounds=5, memcached="127.0.0.1:11211",
                   redis="redis://127.0.0.1:6379/0")  # fmt: skip
    asyncio.run(main(args.writes, args.batches, args.rounds, args.memcached, args.redis))
