"""The pieces of a demand-path fleet in one process, for bench/bench_demand.py: a poller
service with the fleet budget (ccxt against the simulator), a ``MarketWriter`` standing in
for the agents (market.tickers or market.books -> tiers, with the agents' own book decoder)
and a reader cache with its ``ReaderDemand``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from demand import Demand, DemandConfig, FleetState
from demand._writer import Decode, MarketWriter, ticker_document
from readers._demand import ReaderDemand
from tiers import MultiTierCache, TTLPolicy
from topics import DataType
from topics.kafka import ensure_topics
from workers.agents import InvalidEvent, decode_book
from workers.pollers import PollerConfig, PollerService
from workers.pollers._budgeted import OriginBudget
from workers.settings import Settings

KAFKA = os.environ.get("WARMFLEET_KAFKA_URL", "127.0.0.1:9092").removeprefix("kafka://")
REDIS = os.environ.get("WARMFLEET_REDIS_URL", "redis://127.0.0.1:6379/0")
MEMCACHED = os.environ.get("WARMFLEET_MEMCACHED_URL", "memcached://127.0.0.1:11211")
#: demand jobs one poller runs at once: as many as a few pollers of a fleet would (with 16,
#: a cold start of 1,000 reads/s queued book jobs past their 2 s deadline: dropped jobs
#: would be origin requests the lease arm never made, and 503s)
JOB_SLOTS = 64


def book_document(key: bytes | None, raw: bytes | None) -> tuple[dict[str, Any], int]:
    """A ``market.books`` record as the agents cache it (their own decoder)."""
    _, document, as_of = decode_book(key, raw, now_ms=int(time.time() * 1000))
    return document, as_of


DECODERS: dict[DataType, Decode] = {
    DataType.TICKERS: ticker_document,
    DataType.BOOKS: book_document,
}


@dataclass
class DemandFleet:
    prefix: str
    cache: MultiTierCache
    demand: ReaderDemand


@contextlib.asynccontextmanager
async def demand_fleet(
    namespace: str, sim_url: str, *, rate: float, policy: TTLPolicy | None = None,
    config: DemandConfig | None = None, data_type: DataType = DataType.TICKERS,
    demand_type: type[Demand] = Demand,
) -> AsyncIterator[DemandFleet]:  # fmt: skip
    prefix = namespace.rstrip(".")
    await ensure_topics(KAFKA, namespace)
    settings = Settings(kafka_servers=(KAFKA,), namespace=namespace, redis_url=REDIS,
                        key_prefix=prefix, exchange_urls={"binance": sim_url})  # fmt: skip
    budget = OriginBudget(FleetState.from_url(REDIS, prefix), {"binance": rate})
    poller = PollerService(
        settings, config=PollerConfig(rate_limit_ms=1, timeout_ms=5_000),
        offset_reset="earliest", budget=budget, jobs_per_exchange=JOB_SLOTS, max_inflight=1024,
    )  # fmt: skip
    channel = f"{prefix}:invalidate"
    writer = MultiTierCache.from_urls(MEMCACHED, REDIS, ttl_policy=policy,
                                      invalidation_channel=channel)  # fmt: skip
    cache = MultiTierCache.from_urls("memory://?max_entries=10000", MEMCACHED, REDIS,
                                     ttl_policy=policy, invalidation_channel=channel)  # fmt: skip
    market_writer = MarketWriter(KAFKA, namespace, writer, {data_type: DECODERS[data_type]},
                                 skip=(InvalidEvent,))  # fmt: skip
    stop = asyncio.Event()
    await poller.start()
    tasks = [asyncio.create_task(poller.run(stop)),
             asyncio.create_task(market_writer.run(stop))]  # fmt: skip
    link = demand_type.connect(redis_url=REDIS, kafka_servers=[KAFKA], namespace=namespace,
                          key_prefix=prefix, config=config)  # fmt: skip
    demand = ReaderDemand(cache, link, key_prefix=prefix)
    try:
        await asyncio.wait_for(poller.ready.wait(), 30)
        for _ in range(300):  # the poller shares binance's markets at start
            if await link.fleet.listed("binance", fresh=True):
                break
            await asyncio.sleep(0.1)
        await cache.start()
        yield DemandFleet(prefix, cache, demand)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await poller.stop()
        await demand.close()
        await cache.close()
        await writer.close()
