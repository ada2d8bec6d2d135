"""The hot set's two candidate designs, measured on one Zipf(1.1) read stream.

A. top-K over a count-min sketch, in process: every read hashes the key (a stable hash,
   crc32 — Python's ``hash`` is salted per process and the fleet must merge the sketch),
   updates ``depth`` counters and maintains a top-K heap; merging fleet-wide means shipping
   the whole counter matrix to Redis every flush.
B. the decayed Redis sorted set (``tiers.HeatRecorder``): every read adds one to a dict;
   every flush one ``EVALSHA`` adds the distinct keys' counts to a sorted set.

Printed per design: the per-read cost (ns, median of the rounds), what one flush of one
second of reads sends and costs, the memory in process and in Redis, and the top-100
recall against exact counts; then the same-run ratios.

    .venv/bin/python bench/bench_hotset.py [--reads 300000] [--rounds 5] [--keys 24000]
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import os
import statistics
import sys
import time
import tracemalloc
import uuid
import zlib
from array import array
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._args import options
from tiers import HeatRecorder, HeatView, HotSetOptions
from tiers._hotset import set_names
from topics import key_for

REDIS = os.environ.get("WARMFLEET_REDIS_URL", "redis://127.0.0.1:6379/0")
TYPES = ("tickers", "books", "candles", "signals", "volatility")


class SketchTopK:
    """Count-min sketch (width x depth, int32) with a top-K min-heap of candidates."""

    def __init__(self, width: int = 4096, depth: int = 4, k: int = 100) -> None:
        self.width, self.depth, self.k = width, depth, k
        self.rows = [array("i", bytes(4 * width)) for _ in range(depth)]
        self.top: dict[str, int] = {}
        self.heap: list[tuple[int, str]] = []

    def touch(self, key: str) -> None:
        data = key.encode()
        h1 = zlib.crc32(data)
        h2 = zlib.adler32(data) | 1
        width = self.width
        estimate = 1 << 62
        for i, row in enumerate(self.rows):
            j = (h1 + i * h2) % width
            value = row[j] + 1
            row[j] = value
            if value < estimate:
                estimate = value
        top = self.top
        if key in top or len(top) < self.k:
            top[key] = estimate
            heapq.heappush(self.heap, (estimate, key))
            if len(self.heap) > 8 * self.k:  # drop the stale entries of grown counts
                self.heap = [(count, k) for k, count in top.items()]
                heapq.heapify(self.heap)
        elif estimate > self.heap[0][0]:
            while self.heap and top.get(self.heap[0][1]) != self.heap[0][0]:
                heapq.heappop(self.heap)  # stale entries (the key's count grew since)
            if self.heap and estimate > self.heap[0][0]:
                _, evicted = heapq.heappop(self.heap)
                del top[evicted]
                top[key] = estimate
                heapq.heappush(self.heap, (estimate, key))

    def matrix(self) -> bytes:
        return b"".join(row.tobytes() for row in self.rows)


def zipf_stream(n_keys: int, reads: int, prefix: str, seed: int = 7) -> list[str]:
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, n_keys + 1, dtype=np.float64)
    p = ranks**-1.1
    p /= p.sum()
    per_type = n_keys // (2 * len(TYPES))
    keys = [
        key_for(t, ex, f"S{i}/USDT", prefix=prefix)
        for ex in ("binance", "okx")
        for t in TYPES
        for i in range(per_type)
    ]
    rng.shuffle(keys)  # popularity independent of type and exchange
    picks = rng.choice(len(keys), size=reads, p=p[: len(keys)] / p[: len(keys)].sum())
    return [keys[i] for i in picks]


def per_read_ns(touch: object, stream: list[str]) -> float:
    fn = touch  # a bound method: the reader's one line
    started = time.perf_counter()
    for key in stream:
        fn(key)  # type: ignore[operator]
    return (time.perf_counter() - started) / len(stream) * 1e9


class Pending:
    """What a HeatRecorder holds between flushes (its ``touch`` without the loop start)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def touch(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1


def traced(make: Callable[[], Any], stream: list[str]) -> int:
    """Bytes the structure allocates for the whole stream (the keys themselves excluded:
    the reader holds them anyway)."""
    tracemalloc.start()
    structure = make()
    for key in stream:
        structure.touch(key)
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return size


def recall(found: list[str], exact: Counter[str], k: int = 100) -> float:
    truth = {key for key, _ in exact.most_common(k)}
    return len(truth & set(found[:k])) / k


async def run(args: argparse.Namespace) -> None:
    prefix = f"bh{uuid.uuid4().hex[:8]}"
    stream = zipf_stream(args.keys, args.reads, prefix)
    exact = Counter(stream)
    second = stream[: args.per_second]  # one second of one reader's reads
    client = aioredis.Redis.from_url(REDIS)
    sketch_ns, set_ns, sketch_flush, set_flush = [], [], [], []
    sketch_recall = set_recall = 0.0
    sketch_mem = set_mem = redis_bytes = sketch_payload = 0
    set_payload = 0
    for _ in range(args.rounds):
        # -- A: sketch + top-K --------------------------------------------------------
        sketch = SketchTopK()
        sketch_ns.append(per_read_ns(sketch.touch, stream))
        sketch_mem = traced(SketchTopK, stream)
        ranked = sorted(sketch.top, key=lambda key: -sketch.top[key])
        sketch_recall = recall(ranked, exact)
        one = SketchTopK()
        for key in second:
            one.touch(key)
        blob = one.matrix()
        sketch_payload = len(blob)
        started = time.perf_counter()
        await client.set(f"{{{prefix}}}:cms:reader", blob, px=60_000)  # one reader's flush
        await client.zadd(f"{{{prefix}}}:cms:top", dict(one.top))
        sketch_flush.append((time.perf_counter() - started) * 1000)
        await client.delete(f"{{{prefix}}}:cms:reader", f"{{{prefix}}}:cms:top")
        # -- B: dict + decayed sorted set ---------------------------------------------
        options = HotSetOptions(max_pending=10**6)
        rec = HeatRecorder(REDIS, prefix=prefix, options=options)
        set_ns.append(per_read_ns(rec.touch, stream))
        set_mem = traced(lambda: Pending(), stream)
        await rec.flush()
        view = HeatView(REDIS, prefix=prefix)
        await view.refresh()
        heat = {key: view.heat(key) for key in exact}
        set_recall = recall(sorted(heat, key=lambda key: -heat[key]), exact)
        redis_bytes = int(await client.memory_usage(set_names(prefix)[0], samples=0) or 0)
        for key in second:
            rec.touch(key)
        set_payload = sum(len(k) + 6 for k in rec._pending)  # the EVALSHA's argument bytes
        started = time.perf_counter()
        await rec.flush()
        set_flush.append((time.perf_counter() - started) * 1000)
        await rec.close()
        await view.close()
        await client.delete(*set_names(prefix))
    await client.aclose()
    a_ns, b_ns = statistics.median(sketch_ns), statistics.median(set_ns)
    a_fl, b_fl = statistics.median(sketch_flush), statistics.median(set_flush)
    print(f"Zipf 1.1 over {len(set(stream))} distinct of {args.keys} keys, {args.reads} reads,")
    print(f"{args.rounds} rounds (medians); one flush = {args.per_second} reads of one reader")
    print()
    print(
        "| design | per read | in process | in Redis | one flush | flush sends | top-100 recall |"
    )
    print("|---|---|---|---|---|---|---|")
    print(f"| A count-min 4x4096 + top-100 | {a_ns:.0f} ns | {sketch_mem / 1024:.0f} KiB | "
          f"{sketch_payload / 1024:.0f} KiB per reader | {a_fl:.2f} ms | "
          f"{sketch_payload / 1024:.0f} KiB | {sketch_recall:.2f} |")  # fmt: skip
    print(f"| B dict + decayed sorted set | {b_ns:.0f} ns | {set_mem / 1024:.0f} KiB | "
          f"{redis_bytes / 1024:.0f} KiB for the fleet | {b_fl:.2f} ms | "
          f"{set_payload / 1024:.0f} KiB | {set_recall:.2f} |")  # fmt: skip
    print()
    print(f"same-run ratios: per-read cost A/B = {a_ns / b_ns:.1f}x, "
          f"flush cost A/B = {a_fl / b_fl:.2f}x")  # fmt: skip


def main() -> None:
    asyncio.run(run(options(__doc__, reads=300_000, rounds=5, keys=24_000, per_second=15_000)))


if __name__ == "__main__":
    main()
