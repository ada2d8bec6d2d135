"""The pieces of a demand-path fleet in one process, for bench/bench_demand.py: the
simulator, a poller service with the fleet budget, a ticker writer (market.tickers ->
tiers, what the agents do for the ticker key) and a reader cache with its ``ReaderDemand``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer

from demand import Demand, DemandConfig, FleetState
from readers._demand import ReaderDemand
from tiers import MultiTierCache, TTLPolicy, Write
from topics import MARKET_TICKERS, key_for
from topics.kafka import ensure_topics
from workers.pollers import PollerConfig, PollerService
from workers.pollers._budgeted import OriginBudget
from workers.settings import Settings

KAFKA = os.environ.get("WARMFLEET_KAFKA_URL", "127.0.0.1:9092").removeprefix("kafka://")
REDIS = os.environ.get("WARMFLEET_REDIS_URL", "redis://127.0.0.1:6379/0")
MEMCACHED = os.environ.get("WARMFLEET_MEMCACHED_URL", "memcached://127.0.0.1:11211")


async def write_tickers(namespace: str, cache: MultiTierCache, stop: asyncio.Event) -> None:
    prefix = namespace.rstrip(".")
    consumer = AIOKafkaConsumer(
        MARKET_TICKERS.named(namespace), bootstrap_servers=KAFKA, group_id=None,
        auto_offset_reset="earliest", fetch_max_wait_ms=50,
    )  # fmt: skip
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=50)
            writes = []
            for records in batch.values():
                for record in records:
                    body = orjson.loads(record.value or b"{}")
                    body.pop("__faust", None)
                    key = key_for("tickers", body["exchange"], body["symbol"], prefix=prefix)
                    writes.append(Write(key, body, "tickers", int(body["as_of_ms"])))
            if writes:
                await cache.set_many(writes)
    finally:
        await consumer.stop()


@dataclass
class DemandFleet:
    prefix: str
    cache: MultiTierCache
    demand: ReaderDemand


@contextlib.asynccontextmanager
async def demand_fleet(
    namespace: str, sim_url: str, *, rate: float, policy: TTLPolicy | None = None,
    config: DemandConfig | None = None,
) -> AsyncIterator[DemandFleet]:  # fmt: skip
    prefix = namespace.rstrip(".")
    await ensure_topics(KAFKA, namespace)
    settings = Settings(kafka_servers=(KAFKA,), namespace=namespace, redis_url=REDIS,
                        key_prefix=prefix, exchange_urls={"binance": sim_url})  # fmt: skip
    budget = OriginBudget(FleetState.from_url(REDIS, prefix), {"binance": rate})
    poller = PollerService(
        settings, config=PollerConfig(rate_limit_ms=1, timeout_ms=5_000),
        offset_reset="earliest", budget=budget, jobs_per_exchange=16, max_inflight=1024,
    )  # fmt: skip
    channel = f"{prefix}:invalidate"
    writer = MultiTierCache.from_urls(MEMCACHED, REDIS, ttl_policy=policy,
                                      invalidation_channel=channel)  # fmt: skip
    cache = MultiTierCache.from_urls("memory://?max_entries=10000", MEMCACHED, REDIS,
                                     ttl_policy=policy, invalidation_channel=channel)  # fmt: skip
    stop = asyncio.Event()
    await poller.start()
    tasks = [asyncio.create_task(poller.run(stop)),
             asyncio.create_task(write_tickers(namespace, writer, stop))]  # fmt: skip
    link = Demand.connect(redis_url=REDIS, kafka_servers=[KAFKA], namespace=namespace,
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
