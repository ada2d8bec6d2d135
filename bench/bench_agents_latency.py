"""Latency from produce to all three tiers written, at a steady 1,000 tickers/s.

One worker process; tickers over S symbols at a fixed rate. Two measures:

- produce -> all three tiers written: the worker's histogram
  ``warmfleet_agent_event_to_tiers_seconds`` (each event's Kafka timestamp, set by this
  producer at send, to the moment ``set_many`` returned for L1, L2 and L3), read over the
  measured window only; quantiles interpolated inside its buckets;
- an upper bound seen from outside: the worker publishes each symbol's analysis on
  ``analysis.symbols`` after its tiers are written, so "first analysis record for that
  symbol with as_of >= the ticker's, as seen by a consumer here" minus "send time" (one
  more Kafka hop).

Baseline in the same run: the same produce -> consume path through Kafka alone (a consumer
of market.tickers), i.e. what one Kafka hop costs by itself.

    .venv/bin/python bench/bench_agents_latency.py [--rate 1000] [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson
from aiokafka import AIOKafkaConsumer

from bench._agents_bench import (
    BOOTSTRAP,
    T0,
    buckets,
    counter,
    namespace,
    producer,
    quantile,
    spawn,
    stop,
    ticker,
)  # fmt: skip
from topics import ANALYSIS_SYMBOLS, MARKET_TICKERS, symbol_key
from topics.kafka import drop_namespace, ensure_topics

HISTOGRAM = "warmfleet_agent_event_to_tiers_seconds"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_round(rate: int, seconds: float, symbols: int, logs: Path) -> dict[str, list[float]]:
    ns = namespace()
    await ensure_topics(BOOTSTRAP, ns)
    port = free_port()
    proc = spawn(["-m", "workers.cli", "worker"], ns, port, logs / f"{ns}log")
    prod = await producer()
    out = AIOKafkaConsumer(ANALYSIS_SYMBOLS.named(ns), MARKET_TICKERS.named(ns),
                           bootstrap_servers=BOOTSTRAP, group_id=None,
                           auto_offset_reset="latest")  # fmt: skip
    await out.start()
    sent: dict[tuple[bytes, int], float] = {}
    analysed: list[tuple[bytes, int, float]] = []
    kafka_only: dict[tuple[bytes, int], float] = {}

    async def consume() -> None:
        while True:
            batch = await out.getmany(timeout_ms=100)
            now = time.perf_counter()
            for tp, messages in batch.items():
                for m in messages:
                    as_of = orjson.loads(m.value)["as_of_ms"]
                    if tp.topic.endswith("analysis.symbols"):
                        analysed.append((m.key, as_of, now))
                    else:
                        kafka_only.setdefault((m.key, as_of), now)

    reader = asyncio.create_task(consume())
    try:
        # warm up: the worker has joined and processes (not measured)
        while counter(port, "warmfleet_agent_events_total") < 1:
            await prod.send_and_wait(MARKET_TICKERS.named(ns), ticker("W/USDT", 1.0, T0),
                                     key=symbol_key("binance", "W/USDT").encode())  # fmt: skip
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)
        before = buckets(port, HISTOGRAM)
        interval, start = 1.0 / rate, time.perf_counter()
        for i in range(int(rate * seconds)):
            due = start + i * interval
            if (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            symbol = f"S{i % symbols:04d}/USDT"
            key = symbol_key("binance", symbol).encode()
            as_of = T0 + 1 + i
            await prod.send(
                MARKET_TICKERS.named(ns), ticker(symbol, 100.0 + i % 13, as_of), key=key
            )
            sent[(key, as_of)] = time.perf_counter()
        await prod.flush()
        await asyncio.sleep(3.0)
        after = buckets(port, HISTOGRAM)
    finally:
        reader.cancel()
        await out.stop()
        await prod.stop()
        stop(proc)
        await drop_namespace(BOOTSTRAP, [ns])
    first_cover: dict[bytes, list[tuple[int, float]]] = {}
    for key, as_of, at in analysed:
        first_cover.setdefault(key, []).append((as_of, at))
    tiers, kafka = [], []
    for (key, as_of), t_sent in sent.items():
        covering = [at for a, at in first_cover.get(key, []) if a >= as_of]
        if covering:
            tiers.append((min(covering) - t_sent) * 1000)
        if (key, as_of) in kafka_only:
            kafka.append((kafka_only[(key, as_of)] - t_sent) * 1000)
    worker = [quantile(before, after, q) * 1000 for q in (0.5, 0.99)]
    return {"tiers": tiers, "kafka": kafka, "sent": [float(len(sent))], "worker": worker}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="bench-agents-latency-"))
    p50s, p99s, k50s, k99s, covered, w50s, w99s = [], [], [], [], [], [], []
    for _ in range(args.rounds):
        r = await one_round(args.rate, args.seconds, args.symbols, logs)
        p50s.append(pct(r["tiers"], 0.50))
        p99s.append(pct(r["tiers"], 0.99))
        k50s.append(pct(r["kafka"], 0.50))
        k99s.append(pct(r["kafka"], 0.99))
        covered.append(len(r["tiers"]) / r["sent"][0])
        w50s.append(r["worker"][0])
        w99s.append(r["worker"][1])
    print(f"{args.rate} tickers/s for {args.seconds} s over {args.symbols} symbols, "
          f"{args.rounds} rounds (median of rounds), logs {logs}")  # fmt: skip
    print(
        f"  produce -> all three tiers written:       p50 {statistics.median(w50s):6.1f} ms"
        f"  p99 {statistics.median(w99s):6.1f} ms   rounds p99 {[round(x, 1) for x in w99s]}"
    )
    print(
        f"  ... + one Kafka hop (upper bound):        p50 {statistics.median(p50s):6.1f} ms"
        f"  p99 {statistics.median(p99s):6.1f} ms   rounds p99 {[round(x, 1) for x in p99s]}"
    )
    print(
        f"  produce -> consume, Kafka only (baseline): p50 {statistics.median(k50s):6.1f} ms"
        f"  p99 {statistics.median(k99s):6.1f} ms"
    )
    print(f"  events whose analysis was seen: {min(covered):.1%} (worst round)")


if __name__ == "__main__":
    asyncio.run(main())
