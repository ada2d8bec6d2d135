"""A poll cycle for N symbols on each of two venues (Binance + OKX simulators), through the
real ccxt and the real local Kafka.

One cycle = six warm jobs (tickers, candles, books x binance, okx), each for all active
markets, produced to ``warm.jobs``; the poller service polls and publishes; the bench
consumes the market topics until every event is there. Prints, as medians of the rounds:
requests per cycle, events per cycle, events/s published, and time from a job's issue to
its last event published (the Kafka CreateTime of the event).

Baseline in the same run: tickers fetched one request per symbol (``fetch_ticker`` per
symbol, the old design) against the bulk ``fetch_tickers`` the poller makes.

The simulator runs in its own process (so it does not share this one's CPU), with
``rateLimit`` 1 ms: these are the pipeline's figures, not an exchange's rate limit (with
ccxt's default Binance limits, 500 klines requests alone take ~10 s).

    .venv/bin/python bench/bench_poll_cycle.py [--symbols 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import aiohttp
import ccxt.async_support as ccxt_async
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ helpers

from tests._procs import wait_http_ok
from topics import MARKET_BOOKS, MARKET_OHLCV, MARKET_TICKERS, WARM_JOBS
from topics.records import WarmJob
from workers.pollers import ExchangePoller, PollerConfig, PollerService, client_options
from workers.settings import Settings

VENUES = ("binance", "okx")
DATA_TYPES = ("tickers", "candles", "books")
CONFIG = PollerConfig(rate_limit_ms=1, timeout_ms=10_000, concurrency=16, candles_limit=60,
                      book_depth=10)  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for_sim(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        await wait_http_ok(http, f"{url}/api/v3/ping")


async def sim_requests(url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/admin/state") as response:
        return int((await response.json())["requests"])


def job(exchange: str, data_type: str, cycle: int) -> WarmJob:
    now = int(time.time() * 1000)
    return WarmJob(job_id=f"c{cycle}-{exchange}-{data_type}", exchange=exchange,
                   data_type=data_type, symbols=[], phase="market_hours", interval_s=15.0,
                   issued_ms=now, deadline_ms=now + 60_000)  # fmt: skip


async def baseline_tickers(url: str, symbols: int, rounds: int) -> tuple[float, float, float]:
    """Per-symbol fetch_ticker vs one bulk fetch_tickers, Binance, same client settings."""
    client = ccxt_async.binance(client_options("binance", url, CONFIG))
    poller = ExchangePoller("binance", url=url, config=CONFIG)
    try:
        markets = [s for s, m in (await client.load_markets()).items() if m["active"]]
        await poller.markets(time.time() + 30)
        per_symbol, bulk = [], []
        for _ in range(rounds):
            before = await sim_requests(url)
            started = time.perf_counter()
            gate = asyncio.Semaphore(CONFIG.concurrency)

            async def one(symbol: str, gate: asyncio.Semaphore = gate) -> None:
                async with gate:
                    await client.fetch_ticker(symbol)

            await asyncio.gather(*(one(s) for s in markets))
            per_symbol.append(time.perf_counter() - started)
            naive_requests = await sim_requests(url) - before
            started = time.perf_counter()
            result = await poller.poll(job("binance", "tickers", 0))
            bulk.append(time.perf_counter() - started)
            assert len(result.records) == symbols, result
        return statistics.median(per_symbol), statistics.median(bulk), float(naive_requests)
    finally:
        await client.close()
        await poller.close()


async def cycle(
    service: PollerService, producer: AIOKafkaProducer, consumer: AIOKafkaConsumer,
    url: str, symbols: int, number: int,
) -> tuple[int, int, float, float]:  # fmt: skip
    """One cycle: (requests, events, seconds from first issue to last event, median job
    latency to its last event)."""
    before = await sim_requests(url)
    jobs = [job(e, d, number) for e in VENUES for d in DATA_TYPES]
    for j in jobs:
        await producer.send_and_wait(WARM_JOBS.named(service.settings.namespace),
                                     value=j.dumps(), key=j.exchange.encode())  # fmt: skip
    expected = symbols * len(jobs)
    last_event: dict[tuple[str, str], int] = defaultdict(int)
    topic_type = {MARKET_TICKERS.named(service.settings.namespace): "tickers",
                  MARKET_OHLCV.named(service.settings.namespace): "candles",
                  MARKET_BOOKS.named(service.settings.namespace): "books"}  # fmt: skip
    seen = 0
    async with asyncio.timeout(120):
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, messages in batch.items():
                for m in messages:
                    exchange = m.key.decode().split(":", 1)[0]
                    key = (exchange, topic_type[tp.topic])
                    last_event[key] = max(last_event[key], m.timestamp)
                    seen += 1
    requests = await sim_requests(url) - before
    first_issue = min(j.issued_ms for j in jobs)
    latencies = [last_event[(j.exchange, j.data_type)] - j.issued_ms for j in jobs]
    total = (max(last_event.values()) - first_issue) / 1000
    return requests, seen, total, statistics.median(latencies) / 1000


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500, help="per venue")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    kafka = os.environ.get("WARMFLEET_KAFKA_URL", "kafka://127.0.0.1:9092").split("://")[-1]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sim = subprocess.Popen(  # noqa: ASYNC220 (started once, before any async work)
        [sys.executable, "-m", "workers.cli", "sim", "--port", str(port), "--symbols",
         str(args.symbols), "--seed", "7"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await wait_for_sim(url)
        naive_s, bulk_s, naive_requests = await baseline_tickers(url, args.symbols, args.rounds)
        print(f"tickers, {args.symbols} symbols, binance (median of {args.rounds}):")
        print(f"  baseline one request per symbol: {naive_requests:.0f} requests, {naive_s:.3f} s")
        print(
            f"  bulk fetch_tickers (poller):     1 request, {bulk_s:.3f} s"
            f"  -> {naive_s / bulk_s:.1f}x faster, {naive_requests:.0f}x fewer requests"
        )
        # ccxt's leaky bucket at Binance's defaults (rateLimit 50 ms; weight 0.4 per ticker
        # with a symbol, 16 for all): what the rate limiter alone would cost per cycle
        print(
            f"  ccxt throttle at production limits: per symbol {naive_requests * 0.4 * 0.05:.1f} s"
            f" vs bulk {16 * 0.05:.1f} s"
        )

        namespace = f"bench{uuid.uuid4().hex[:8]}."
        settings = Settings(
            kafka_servers=(kafka,), namespace=namespace, exchange_urls={v: url for v in VENUES}
        )
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
        service = PollerService(settings, config=CONFIG, offset_reset="earliest")
        await service.start()
        stop = asyncio.Event()
        runner = asyncio.create_task(service.run(stop))
        await asyncio.wait_for(service.ready.wait(), 30)
        producer = AIOKafkaProducer(bootstrap_servers=kafka, enable_idempotence=True, acks="all")
        await producer.start()
        consumer = AIOKafkaConsumer(
            *(s.named(namespace) for s in (MARKET_TICKERS, MARKET_OHLCV, MARKET_BOOKS)),
            bootstrap_servers=kafka, auto_offset_reset="earliest",
        )  # fmt: skip
        await consumer.start()
        try:
            # the first cycle loads markets and warms connections: not measured
            await cycle(service, producer, consumer, url, args.symbols, 0)
            rounds = [
                await cycle(service, producer, consumer, url, args.symbols, n)
                for n in range(1, args.rounds + 1)
            ]
        finally:
            await consumer.stop()
            await producer.stop()
            stop.set()
            await runner
            await service.stop()
        requests = statistics.median(r[0] for r in rounds)
        events = statistics.median(r[1] for r in rounds)
        total = statistics.median(r[2] for r in rounds)
        latency = statistics.median(r[3] for r in rounds)
        print(f"\nfull cycle, {args.symbols} symbols x {len(VENUES)} venues x "
              f"{len(DATA_TYPES)} data types via Kafka (median of {args.rounds}):")  # fmt: skip
        print(f"  requests per cycle:            {requests:.0f}"
              f"  (tickers 1 per venue; candles and books 1 per symbol)")  # fmt: skip
        print(f"  events per cycle:              {events:.0f}")
        print(f"  job issue -> last event:       {total:.2f} s for the whole cycle, "
              f"{latency:.2f} s median per job")  # fmt: skip
        print(f"  events/s published:            {events / total:,.0f}")
        per_round = ", ".join(f"{r[2]:.2f}s" for r in rounds)
        print(f"  rounds: {per_round}")
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
