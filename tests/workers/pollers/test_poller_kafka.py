"""The poller process end to end on the real local Kafka: warm jobs produced to the
(namespaced) ``warm.jobs`` topic, market events consumed from the real market topics."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from sim import RunningSimulator, make_fault
from tests.conftest import StackURLs
from tests.workers.pollers.conftest import FAST, make_job, running_service
from topics import MARKET_BOOKS, MARKET_TICKERS, WARM_JOBS
from topics.records import WarmJob
from workers.pollers import GROUP, PollerService
from workers.settings import Settings

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def poller_service(
    stack_urls: StackURLs, namespace: str, sim: RunningSimulator, **config: Any
) -> AsyncIterator[PollerService]:
    settings = Settings(
        kafka_servers=(stack_urls.kafka_bootstrap,),
        namespace=namespace,
        exchange_urls={"binance": sim.url, "okx": sim.url},
    )
    service = PollerService(
        settings, config=dataclasses.replace(FAST, **config), offset_reset="earliest"
    )
    async with running_service(service):
        yield service


async def produce(bootstrap: str, topic: str, *messages: tuple[bytes, bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


def job_message(job: WarmJob) -> tuple[bytes, bytes]:
    return job.exchange.encode(), job.dumps()


async def consume(
    bootstrap: str, topic: str, count: int, timeout_s: float = 30, quiet_s: float = 0
) -> list[Any]:
    """The first ``count`` messages of ``topic`` (fails the test if they do not come), plus
    whatever else arrives until ``quiet_s`` pass without a message."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    got: list[Any] = []
    try:
        async with asyncio.timeout(timeout_s):
            while len(got) < count:
                batch = await consumer.getmany(timeout_ms=200)
                for messages in batch.values():
                    got.extend(messages)
        while quiet_s > 0:
            batch = await consumer.getmany(timeout_ms=int(quiet_s * 1000))
            if not batch:
                break
            for messages in batch.values():
                got.extend(messages)
    finally:
        await consumer.stop()
    return got


async def test_a_warm_job_becomes_events_on_the_market_topic(
    stack_urls: StackURLs, namespace: str, sim: RunningSimulator
) -> None:
    bootstrap = stack_urls.kafka_bootstrap
    async with poller_service(stack_urls, namespace, sim) as service:
        job = make_job("binance", "tickers", ["BTC/USDT", "ETH/BTC", "NOPE/USDT"])
        await produce(bootstrap, WARM_JOBS.named(namespace), job_message(job))
        events = await consume(bootstrap, MARKET_TICKERS.named(namespace), 2)
        by_key = {m.key.decode(): orjson.loads(m.value) for m in events}
        assert set(by_key) == {"binance:BTC/USDT", "binance:ETH/BTC"}
        btc = by_key["binance:BTC/USDT"]
        assert (btc["exchange"], btc["symbol"]) == ("binance", "BTC/USDT")
        assert btc["last"] > 0 and btc["bid"] < btc["ask"]
        assert btc["as_of_ms"] <= btc["received_ms"] + 5_000
        # the job's offset is committed once its events are out
        consumer = service._consumer
        assert consumer is not None
        async with asyncio.timeout(20):
            while True:
                committed = [await consumer.committed(tp) for tp in consumer.assignment()]
                if sum(c or 0 for c in committed) == 1:
                    break
                await asyncio.sleep(0.1)
        assert service.group_id == f"{namespace}{GROUP}"


async def test_malformed_jobs_and_garbage_payloads_never_reach_the_topic(
    stack_urls: StackURLs, namespace: str, sim: RunningSimulator
) -> None:
    bootstrap = stack_urls.kafka_bootstrap
    sim.simulator.faults.add(
        make_fault({"endpoint": "/api/v3/depth", "kind": "truncated"}), sim.simulator.now_ms()
    )
    async with poller_service(stack_urls, namespace, sim) as service:
        await produce(
            bootstrap,
            WARM_JOBS.named(namespace),
            (b"binance", b"\x00not json"),
            (b"binance", b'{"job_id": 1}'),
            job_message(make_job("binance", "books", ["BTC/USDT", "ETH/USDT"], job_id="bad")),
            job_message(make_job("okx", "books", ["BTC/USDT"], job_id="good")),
        )
        events = await consume(bootstrap, MARKET_BOOKS.named(namespace), 1)
        assert [m.key for m in events] == [b"okx:BTC/USDT"]
        # let the whole batch be handled, then check nothing else was published
        async with asyncio.timeout(20):
            while service.jobs_seen < 4 or service._tasks:  # noqa: ASYNC110 (polling a counter)
                await asyncio.sleep(0.05)
        everything = await consume(bootstrap, MARKET_BOOKS.named(namespace), 0, quiet_s=2)
        assert [m.key for m in everything] == [b"okx:BTC/USDT"]
        assert service.pollers["binance"].breaker.failures == 0  # garbage is not an outage


async def test_one_exchange_timing_out_does_not_delay_the_other(
    stack_urls: StackURLs, namespace: str, sim: RunningSimulator
) -> None:
    bootstrap = stack_urls.kafka_bootstrap
    async with poller_service(stack_urls, namespace, sim, timeout_ms=1_000) as service:
        # both exchanges loaded and healthy first
        await produce(bootstrap, WARM_JOBS.named(namespace),
                      job_message(make_job("binance", "tickers", ["BTC/USDT"])),
                      job_message(make_job("okx", "tickers", ["BTC/USDT"])))  # fmt: skip
        await consume(bootstrap, MARKET_TICKERS.named(namespace), 2)
        sim.simulator.faults.add(make_fault({"endpoint": "binance", "kind": "timeout"}), 0)
        # binance's job goes first on the topic; okx's arrives after it
        slow = make_job("binance", "tickers", ["ETH/USDT"], job_id="b")
        fast = make_job("okx", "tickers", ["ETH/USDT"], job_id="o")
        await produce(bootstrap, WARM_JOBS.named(namespace), job_message(slow), job_message(fast))
        events = await consume(bootstrap, MARKET_TICKERS.named(namespace), 3)
        assert {m.key for m in events} == {b"binance:BTC/USDT", b"okx:BTC/USDT", b"okx:ETH/USDT"}
        binance = service.pollers["binance"]
        # okx's event was out while binance's job was still retrying its timeouts
        assert any(t.get_name() == "job-b" for t in service._tasks)
        pending = [t for t in service._tasks if t.get_name() == "job-b"]
        await asyncio.wait(pending, timeout=30)
        assert binance.breaker.failures >= 1
        sim.simulator.faults.clear()
        everything = await consume(bootstrap, MARKET_TICKERS.named(namespace), 3, quiet_s=1)
        assert b"binance:ETH/USDT" not in {m.key for m in everything}
