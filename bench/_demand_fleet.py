"""The pieces of a demand-path fleet for bench/bench_demand.py: in a process of their own
(as in a fleet, and so that on 2 cores they do not share the reader's event loop), the
poller service with the fleet budget (ccxt against the simulator) and a ``MarketWriter``
standing in for the agents (market.tickers or market.books -> tiers, with the agents' own
book decoder); in the benchmark's process, a reader cache with its ``ReaderDemand``.

    python bench/_demand_fleet.py NAMESPACE SIM_URL DATA_TYPE FRESH_S RATE  (the child)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from demand import Demand, DemandConfig, FleetState
from demand._writer import Decode, MarketWriter, ticker_document
from readers._demand import ReaderDemand
from tiers import MultiTierCache, TierLevel, TTLPolicy
from topics import DataType
from topics.kafka import ensure_topics
from workers.agents import InvalidEvent, decode_book
from workers.logs import configure_logging
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
JITTER = 0.1  # the TTL policy's default


def policy_for(data_type: DataType, fresh_s: float) -> TTLPolicy | None:
    """Fresh ``fresh_s`` at the deepest tier (L1 a third, L2 two thirds), the usual jitter,
    no volatility scaling; 0: the default policy."""
    if not fresh_s:
        return None
    f = fresh_s
    return TTLPolicy(
        base_s={data_type: (f / 3, 2 * f / 3, f)}, jitter=JITTER, k=0.0, stale_s=30.0,
        clamp_s={level: (0.5, 3600.0) for level in TierLevel},
    )  # fmt: skip


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


async def serve(namespace: str, sim_url: str, data_type: DataType, fresh_s: float,
                rate: float) -> None:  # fmt: skip
    """The child: poller + writer until SIGTERM; prints ``ready`` once jobs can be served."""
    prefix = namespace.rstrip(".")
    settings = Settings(kafka_servers=(KAFKA,), namespace=namespace, redis_url=REDIS,
                        key_prefix=prefix, exchange_urls={"binance": sim_url})  # fmt: skip
    fleet = FleetState.from_url(REDIS, prefix)
    poller = PollerService(
        settings, config=PollerConfig(rate_limit_ms=1, timeout_ms=5_000),
        offset_reset="earliest", budget=OriginBudget(fleet, {"binance": rate}),
        jobs_per_exchange=JOB_SLOTS, max_inflight=1024,
    )  # fmt: skip
    writer = MultiTierCache.from_urls(MEMCACHED, REDIS, ttl_policy=policy_for(data_type, fresh_s),
                                      invalidation_channel=f"{prefix}:invalidate")  # fmt: skip
    market_writer = MarketWriter(KAFKA, namespace, writer, {data_type: DECODERS[data_type]},
                                 skip=(InvalidEvent,))  # fmt: skip
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await poller.start()
    tasks = [asyncio.create_task(poller.run(stop)),
             asyncio.create_task(market_writer.run(stop))]  # fmt: skip
    try:
        await asyncio.wait_for(poller.ready.wait(), 30)
        for _ in range(300):  # the poller shares binance's markets at start
            if await fleet.listed("binance", fresh=True):
                break
            await asyncio.sleep(0.1)
        print("ready", flush=True)
        await stop.wait()
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await poller.stop()
        await writer.close()
        await fleet.close()


@contextlib.asynccontextmanager
async def demand_fleet(
    namespace: str, sim_url: str, *, rate: float, fresh_s: float = 0.0,
    config: DemandConfig | None = None, data_type: DataType = DataType.TICKERS,
    demand_type: type[Demand] = Demand,
) -> AsyncIterator[DemandFleet]:  # fmt: skip
    prefix = namespace.rstrip(".")
    await ensure_topics(KAFKA, namespace)
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, namespace, sim_url, str(data_type), str(fresh_s), str(rate),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    cache = MultiTierCache.from_urls(
        "memory://?max_entries=10000", MEMCACHED, REDIS, ttl_policy=policy_for(data_type, fresh_s),
        invalidation_channel=f"{prefix}:invalidate",
    )  # fmt: skip
    link = demand_type.connect(redis_url=REDIS, kafka_servers=[KAFKA], namespace=namespace,
                               key_prefix=prefix, config=config)  # fmt: skip
    demand = ReaderDemand(cache, link, key_prefix=prefix)
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 60)
        if line.strip() != b"ready":
            raise SystemExit(f"the poller process did not start ({child.returncode})")
        await cache.start()
        yield DemandFleet(prefix, cache, demand)
    finally:
        if child.returncode is None:
            child.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(child.wait(), 30)
        except TimeoutError:
            child.kill()
        await demand.close()
        await cache.close()


if __name__ == "__main__":
    configure_logging("WARNING")
    ns, url, kind, fresh, budget = sys.argv[1:6]
    asyncio.run(serve(ns, url, DataType(kind), float(fresh), float(budget)))
