"""Stale-if-error end to end on the real servers: the simulator fails one venue, the real
poller service (real Kafka, ccxt) opens that exchange's breaker and publishes it
(``workers.pollers._origin`` -> Redis), and the reader serves that exchange's keys stale and
flagged while the other venue's stay fresh; after recovery fresh values replace them.

The agents' write is played by a consumer of ``market.tickers`` that writes each ticker
through ``MultiTierCache`` under the agents' key, with a TTL policy fresh for ~1 s so a copy
goes stale within the test."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY

from readers import OriginWatch, create_app, running_reader
from sim import make_fault, running_simulator
from tests.conftest import StackURLs
from tests.readers._helpers import reader_cache, short_policy
from tests.workers.pollers.conftest import make_job
from tests.workers.pollers.test_poller_kafka import job_message, poller_service, produce
from tiers import CircuitBreaker, MultiTierCache
from topics import MARKET_TICKERS, WARM_JOBS, key_for
from topics.origin import origin_key
from workers.pollers._origin import OriginPublisher

pytestmark = pytest.mark.integration

SYMBOLS = ["BTC/USDT", "ETH/USDT"]


@contextlib.asynccontextmanager
async def agent_writes(
    bootstrap: str, namespace: str, cache: MultiTierCache, prefix: str
) -> AsyncIterator[list[int]]:
    """Every ticker on the market topic -> the cache, as the agents write it; yields a
    list that grows by one per write (its as_of)."""
    consumer = AIOKafkaConsumer(
        MARKET_TICKERS.named(namespace), bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    written: list[int] = []

    async def run() -> None:
        async for message in consumer:
            ticker = orjson.loads(message.value)
            key = key_for("tickers", ticker["exchange"], ticker["symbol"], prefix=prefix)
            await cache.set(key, ticker, data_type="tickers", as_of=ticker["as_of_ms"])
            written.append(ticker["as_of_ms"])

    task = asyncio.create_task(run())
    try:
        yield written
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


async def answer(base: str, exchange: str, symbol: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/v2/tickers/{exchange}/{symbol.replace('/', '-')}") as r:
            return r.status, await r.json()


async def until(check: Any, timeout_s: float = 30.0) -> Any:
    """Poll ``check()`` (async) until it returns something truthy."""
    async with asyncio.timeout(timeout_s):
        while not (got := await check()):  # noqa: ASYNC110 (polling HTTP answers)
            await asyncio.sleep(0.1)
    return got


@pytest.mark.timeout(120)
async def test_a_failing_venue_is_served_stale_and_flagged_the_other_fresh_then_all_fresh(
    stack_urls: StackURLs, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = namespace.rstrip(".")
    # where the pollers publish their breakers: this test's Redis and key prefix
    monkeypatch.setenv("WARMFLEET_REDIS_URL", stack_urls.redis_url)
    monkeypatch.setenv("WARMFLEET_KEY_PREFIX", prefix)
    bootstrap = stack_urls.kafka_bootstrap
    jobs = WARM_JOBS.named(namespace)
    cache = reader_cache(stack_urls, short_policy(300.0))
    origins = OriginWatch(stack_urls.redis_url, prefix, refresh_s=0.1)
    redis = aioredis.from_url(stack_urls.redis_url)

    async def warm(exchange: str, job_id: str) -> None:
        await produce(
            bootstrap, jobs, job_message(make_job(exchange, "tickers", SYMBOLS, 10, job_id))
        )

    async def fresh(exchange: str) -> bool:
        got = [await answer(base, exchange, s) for s in SYMBOLS]
        return all(status == 200 and not body["stale"] for status, body in got)

    try:
        async with (
            running_simulator(seed=7, symbols=12) as sim,
            poller_service(
                stack_urls, namespace, sim, breaker_threshold=2, breaker_cooldown_s=1.0,
                max_attempts=2,
            ) as service,
            agent_writes(bootstrap, namespace, cache, prefix) as written,
            running_reader(create_app(cache, key_prefix=prefix, origins=origins)) as base,
        ):  # fmt: skip
            await warm("binance", "b1")
            await warm("okx", "o1")
            await until(lambda: fresh("binance"))
            await until(lambda: fresh("okx"))
            assert origins.failing == frozenset()

            # binance fails: its breaker opens and is published, its copies go past fresh
            sim.simulator.faults.add(
                make_fault({"endpoint": "binance", "kind": "503"}), sim.simulator.now_ms()
            )
            await warm("binance", "b2")
            await until(lambda: asyncio.sleep(0, "binance" in origins.failing))
            assert service.pollers["binance"].breaker.is_open
            assert b"binance" in await redis.hkeys(origin_key(prefix))
            assert "okx" not in origins.failing
            await asyncio.sleep(2.2)  # every binance copy is past its fresh TTL now
            before = len(written)
            await warm("okx", "o2")
            await until(lambda: asyncio.sleep(0, len(written) >= before + len(SYMBOLS)))
            for symbol in SYMBOLS:
                status, body = await answer(base, "binance", symbol)
                assert status == 200 and body["stale"] is True, body  # the last good copy
                assert body["age_ms"] >= 2_000 and body["tier"] == "redis"
                status, body = await answer(base, "okx", symbol)
                assert status == 200 and body["stale"] is False, body

            # recovery: the next warm job closes the breaker, fresh values replace stale ones
            sim.simulator.faults.clear()
            await asyncio.sleep(1.1)  # the breaker's cooldown: the next request is its probe
            started = time.monotonic()
            await warm("binance", "b3")
            await until(lambda: fresh("binance"))
            recovered_s = time.monotonic() - started
            assert not service.pollers["binance"].breaker.is_open
            await until(lambda: asyncio.sleep(0, "binance" not in origins.failing))
            assert await redis.hkeys(origin_key(prefix)) == []
            # within one warm interval (the job's 15 s) of the first job after recovery
            assert recovered_s < 15.0
    finally:
        await redis.delete(origin_key(prefix))
        await redis.aclose()
        await origins.close()
        await cache.close()


async def test_a_redis_that_cannot_be_written_is_counted_and_the_publisher_still_ends() -> None:
    name = "warmfleet_poller_origin_publish_failures_total"
    before = REGISTRY.get_sample_value(name) or 0.0
    breaker = CircuitBreaker("binance", failure_threshold=1, cooldown_s=60, kind="exchange")
    publisher = OriginPublisher("redis://127.0.0.1:1/0", "nowhere", refresh_s=0.05)
    assert breaker.failure("503")
    publisher.watch("binance", breaker)
    await until(lambda: asyncio.sleep(0, (REGISTRY.get_sample_value(name) or 0) >= before + 2))
    assert publisher.task is not None and not publisher.task.done()  # it keeps trying
    breaker.success()
    await asyncio.wait_for(publisher.task, 5)  # closed and nothing published: it stops
