"""The real servers answer as the fleet needs them to: Kafka, Redis, Memcached."""

from __future__ import annotations

import asyncio
import time

import aiomcache
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

pytestmark = pytest.mark.integration


async def test_kafka_idempotent_round_trip(kafka_bootstrap: str, namespace: str) -> None:
    topic = f"{namespace}roundtrip"
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, enable_idempotence=True, acks="all"
    )
    await producer.start()
    try:
        sent = [(f"binance:SYM{i}".encode(), f"payload-{i}".encode()) for i in range(20)]
        for key, value in sent:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{namespace}group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        received: list[tuple[bytes | None, bytes | None]] = []
        deadline = time.monotonic() + 30
        while len(received) < len(sent) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                received.extend((r.key, r.value) for r in records)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert sorted(received) == sorted(sent)


async def test_redis_set_get_with_ttl(redis_url: str, namespace: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        key = f"{namespace}ttl"
        assert await client.set(key, b"warm", px=1500)
        assert await client.get(key) == b"warm"
        pttl = await client.pttl(key)
        assert 0 < pttl <= 1500
        await asyncio.sleep(1.7)
        assert await client.get(key) is None
    finally:
        await client.aclose()


async def test_memcached_set_get_with_expiry(memcached_addr: str, namespace: str) -> None:
    host, port = memcached_addr.split(":")
    client = aiomcache.Client(host, int(port))
    try:
        key = f"{namespace}exp".encode()
        await client.set(key, b"warm", exptime=1)
        assert await client.get(key) == b"warm"
        # memcached expiry has one-second resolution: gone within two seconds
        await asyncio.sleep(2.2)
        assert await client.get(key) is None
    finally:
        await client.close()
