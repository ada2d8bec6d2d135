"""The demand path on the real stack: the simulator (ccxt talks to it), an in-process
poller service with the fleet budget, real Kafka, Redis and Memcached, and the HTTP reader.

``MarketWriter`` (demand/_writer.py) stands in for the analytics agents on
``market.tickers`` -> tiers: it writes each ticker through a real ``MultiTierCache`` with a
TTL policy the test chooses, so the freshness tests run in seconds (the agents' own TTLs
cover the warm interval)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from demand import Demand, DemandConfig, FleetState
from demand import _names as demand_names
from demand._writer import MarketWriter
from readers import create_app, running_reader
from readers._demand import ReaderDemand
from sim import RunningSimulator, running_simulator
from tests.conftest import StackURLs
from tests.workers.pollers.conftest import FAST, running_service
from tiers import MultiTierCache, TierLevel, TTLPolicy
from tiers._multi import DEFAULT_CHANNEL
from topics import WARM_JOBS, DataType, key_for
from topics.kafka import ensure_topics
from workers.pollers import PollerService
from workers.pollers._budgeted import OriginBudget
from workers.settings import Settings

#: a policy whose copies expire in seconds: fresh 1.5 / 2 / 3 s, no coverage, no jitter
SHORT_TTLS = TTLPolicy(
    base_s={DataType.TICKERS: (1.5, 2.0, 3.0)},
    clamp_s={TierLevel.L1: (0.5, 60.0), TierLevel.L2: (0.5, 600.0), TierLevel.L3: (0.5, 3600.0)},
    stale_s=30.0,
    jitter=0.0,
    k=0.0,
)


@dataclass
class Fleet:
    url: str  # the reader
    sim: RunningSimulator
    prefix: str
    namespace: str
    reader_cache: MultiTierCache
    writer: MarketWriter
    demand: ReaderDemand
    redis: aioredis.Redis
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def ticker_key(self, symbol: str, exchange: str = "binance") -> str:
        return key_for("tickers", exchange, symbol, prefix=self.prefix)


async def sim_requests(sim: RunningSimulator, path_part: str) -> float:
    """Requests the simulator answered on endpoints containing ``path_part``."""
    async with aiohttp.ClientSession() as http, http.get(sim.url + "/metrics") as resp:
        text = await resp.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("warmfleet_sim_requests_total{") and path_part in line:
            total += float(line.rpartition(" ")[2])
    return total


async def jobs_on(bootstrap: str, namespace: str, wait_s: float = 2.0) -> list[dict[str, Any]]:
    """Every message on the namespace's ``warm.jobs`` (read from the start)."""
    consumer = AIOKafkaConsumer(
        WARM_JOBS.named(namespace), bootstrap_servers=bootstrap, group_id=None,
        auto_offset_reset="earliest",
    )  # fmt: skip
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            found += [orjson.loads(r.value) for rs in batch.values() for r in rs if r.value]
    finally:
        await consumer.stop()
    return found


async def wait_listed(redis: aioredis.Redis, prefix: str, exchange: str = "binance") -> None:
    key = demand_names.markets(prefix, exchange)
    for _ in range(300):
        if await redis.scard(key):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no poller shared {exchange}'s markets within 30 s")


@contextlib.asynccontextmanager
async def poller(
    stack_urls: StackURLs, namespace: str, sim: RunningSimulator, *, rate: float
) -> AsyncIterator[PollerService]:
    prefix = namespace.rstrip(".")
    settings = Settings(
        kafka_servers=(stack_urls.kafka_bootstrap,), namespace=namespace,
        redis_url=stack_urls.redis_url, key_prefix=prefix, exchange_urls={"binance": sim.url},
    )  # fmt: skip
    budget = OriginBudget(FleetState.from_url(stack_urls.redis_url, prefix), {"binance": rate})
    service = PollerService(
        settings, config=dataclasses.replace(FAST, timeout_ms=5_000), offset_reset="earliest",
        budget=budget, jobs_per_exchange=8,
    )  # fmt: skip
    async with running_service(service):
        yield service


@contextlib.asynccontextmanager
async def fleet(
    stack_urls: StackURLs, namespace: str, *, symbols: int = 12, rate: float = 10.0,
    policy: TTLPolicy | None = None, config: DemandConfig | None = None,
    reader_processes: bool = False,
) -> AsyncIterator[Fleet]:  # fmt: skip
    """Simulator + poller (budget ``rate``/s) + ticker writer + one in-process reader.
    ``reader_processes``: no in-process reader (``Fleet.url`` is empty); the writer
    announces on the default bus channel, the one `warmfleet reader` processes listen on."""
    prefix = namespace.rstrip(".")
    await ensure_topics(stack_urls.kafka_bootstrap, namespace)
    redis = aioredis.from_url(stack_urls.redis_url)
    # the default channel for reader processes, else this test's own bus
    channel = DEFAULT_CHANNEL if reader_processes else f"{prefix}:invalidate"
    urls = (stack_urls.memcached_url, stack_urls.redis_url)
    writer_cache = MultiTierCache.from_urls(*urls, ttl_policy=policy, invalidation_channel=channel)
    reader_cache = MultiTierCache.from_urls(
        "memory://?max_entries=5000", *urls, ttl_policy=policy, invalidation_channel=channel
    )
    stop = asyncio.Event()
    async with (
        running_simulator(seed=7, symbols=symbols) as sim,
        poller(stack_urls, namespace, sim, rate=rate),
    ):
        writer = MarketWriter(stack_urls.kafka_bootstrap, namespace, writer_cache)
        write_task = asyncio.create_task(writer.run(stop))
        await wait_listed(redis, prefix)
        assert await reader_cache.start()
        link = Demand.connect(
            redis_url=stack_urls.redis_url, kafka_servers=[stack_urls.kafka_bootstrap],
            namespace=namespace, key_prefix=prefix, config=config,
        )  # fmt: skip
        demand = ReaderDemand(reader_cache, link, key_prefix=prefix)
        app = create_app(reader_cache, key_prefix=prefix, demand=demand)
        try:
            if reader_processes:
                yield Fleet("", sim, prefix, namespace, reader_cache, writer, demand, redis)
            else:
                async with running_reader(app) as url:
                    yield Fleet(url, sim, prefix, namespace, reader_cache, writer, demand, redis)
        finally:
            stop.set()
            await write_task
            await demand.close()
            await reader_cache.close()
            await writer_cache.close()
            await redis.aclose()
