"""Notification delay of the invalidation bus on loopback, across two processes.

A writer process (this program with ``--writer``) writes one new key at a time through
memcached + Redis (+ its own L1) every ``1/--rate`` s; every write batch is announced on
the bus. This process holds an L1 subscribed to the same channel and notes, per key, when
the announcement reached it. Both stamp ``time.time_ns()`` (one host clock), so the delay
is measured from the moment the writer's ``set`` began (what a reader elsewhere can
observe: the value is in L2/L3 and its announcement on the way) and from when it returned.
Also: the delay for a 2,000-key batch (one or two bus messages) to reach the reader.

Goal (issue 13): notification delay p99 <= 20 ms — from the write's return (its value is in
L2/L3, the announcement sent) to the other process's L1 — so reads are never more than
100 ms behind a write made elsewhere (checked from the write's start too). The writer sends
its announcement only after the tiers took the write: a reader that drops its copy must
find the new one below, never re-promote the old one.

    .venv/bin/python bench/bench_tiers_bus.py [--writes 500] [--rate 100]
        [--memcached memcached://127.0.0.1:11211] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

from tiers import MultiTierCache, Write

ROOT = Path(__file__).resolve().parents[1]


def env_url(name: str, default: str) -> str:
    return os.environ.get(name, default)


async def writer(args: argparse.Namespace) -> None:
    cache = MultiTierCache.from_urls(
        "memory://", args.memcached, args.redis, invalidation_channel=args.channel
    )
    try:
        assert await cache.start()
        print(json.dumps({"ready": True}), flush=True)
        await asyncio.sleep(0.5)  # the reader is subscribed before us; let it settle
        for i in range(args.writes):
            key = f"{args.prefix}:v2:market:ticker:15s:bench:W{i}"
            begun = time.time_ns()
            await cache.set(key, {"i": i}, data_type="tickers", as_of=time.time_ns() // 10**6)
            print(json.dumps({"key": key, "begun": begun, "done": time.time_ns()}), flush=True)
            await asyncio.sleep(1.0 / args.rate)
        batch = [Write(f"{args.prefix}:v2:market:ticker:15s:bench:B{j}", j, "tickers",
                       time.time_ns() // 10**6) for j in range(2000)]  # fmt: skip
        begun = time.time_ns()
        await cache.set_many(batch)
        print(json.dumps({"batch": [w.key for w in batch[-1:]], "begun": begun,
                          "done": time.time_ns()}), flush=True)  # fmt: skip
    finally:
        await cache.close()


async def reader(args: argparse.Namespace) -> None:
    channel = f"bench-bus-{uuid.uuid4().hex[:8]}"
    prefix = f"bb{uuid.uuid4().hex[:8]}"
    cache = MultiTierCache.from_urls(
        "memory://", args.memcached, args.redis, invalidation_channel=channel
    )
    arrived: dict[str, int] = {}
    coherence = cache._coherence
    assert coherence is not None
    deliver = coherence.deliver

    def noting(payload: bytes) -> None:  # stamp every key of a message as it arrives
        now = time.time_ns()
        for line in payload.split(b"\n")[1:]:
            arrived.setdefault(line.partition(b" ")[2].decode(), now)
        deliver(payload)

    coherence.deliver = noting  # type: ignore[method-assign]
    assert await cache.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--writer", "--channel", channel, "--prefix", prefix,
        "--writes", str(args.writes), "--rate", str(args.rate), "--memcached", args.memcached,
        "--redis", args.redis, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    rows = []
    while line := await proc.stdout.readline():
        rows.append(json.loads(line))
    await proc.wait()
    await asyncio.sleep(0.2)
    await cache.close()
    singles = [r for r in rows if "key" in r]
    from_begun = [(arrived[r["key"]] - r["begun"]) / 1e6 for r in singles if r["key"] in arrived]
    from_done = [(arrived[r["key"]] - r["done"]) / 1e6 for r in singles if r["key"] in arrived]
    lost = len(singles) - len(from_begun)
    (batch,) = [r for r in rows if "batch" in r]
    batch_ms = (arrived.get(batch["batch"][0], 0) - batch["begun"]) / 1e6

    def q(values: list[float], p: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))]

    print(f"{len(singles)} single-key writes at {args.rate:g}/s from another process, "
          f"{lost} announcements not seen")  # fmt: skip
    print(f"  write begun -> other L1 notified: p50 {statistics.median(from_begun):6.2f} ms  "
          f"p99 {q(from_begun, 0.99):6.2f} ms  max {max(from_begun):6.2f} ms")  # fmt: skip
    print(f"  write returned -> notified:       p50 {statistics.median(from_done):6.2f} ms  "
          f"p99 {q(from_done, 0.99):6.2f} ms")  # fmt: skip
    print(f"  a 2,000-key set_many begun -> its last key notified: {batch_ms:.1f} ms")
    goal = q(from_done, 0.99) <= 20 and lost == 0
    print(f"goal notification delay (write returned -> notified) p99 <= 20 ms, none lost: "
          f"{'met' if goal else 'NOT met'}; write begun -> notified p99 <= 100 ms: "
          f"{'met' if q(from_begun, 0.99) <= 100 else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--memcached", default=env_url("WARMFLEET_MEMCACHED_URL",
                                                       "memcached://127.0.0.1:11211"))  # fmt: skip
    parser.add_argument("--redis", default=env_url("WARMFLEET_REDIS_URL",
                                                   "redis://127.0.0.1:6379/0"))  # fmt: skip
    parser.add_argument("--writer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--channel", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args()
    asyncio.run(writer(args) if args.writer else reader(args))
