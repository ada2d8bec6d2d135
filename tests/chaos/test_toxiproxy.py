"""The faults stack's toxiproxy and its client: the proxies stand where `status` says, the
broker advertises its proxy, and a toxic or a cut proxy really reaches the client."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from aiokafka import AIOKafkaProducer

from stack import StackConfig, status
from stack._toxiproxy import Toxic, Toxiproxy, ToxiproxyError

pytestmark = [pytest.mark.integration]


def _ping(address: str) -> tuple[bytes, float]:
    host, port = address.rsplit(":", 1)
    started = time.monotonic()
    try:
        with socket.create_connection((host, int(port)), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16), time.monotonic() - started
    except OSError:
        return b"", time.monotonic() - started


def _redis_proxy(info: dict[str, object]) -> str:
    return str(info["redis"]).removeprefix("redis://").removesuffix("/0")


async def test_status_points_the_fleet_at_the_proxies(faults: StackConfig) -> None:
    info = status(faults)
    direct = info["direct"]
    assert info["redis"] != direct["redis"] and info["kafka"] != direct["kafka"]
    async with Toxiproxy(info["toxiproxy"]) as api:
        proxies = await api.proxies()
    assert proxies["redis"]["listen"] == _redis_proxy(info)
    assert proxies["redis"]["upstream"] == direct["redis"].removeprefix("redis://")[:-2]
    assert proxies["kafka"]["listen"] == info["kafka"]
    assert set(proxies) == {"kafka", "redis", "memcached", "sim-binance", "sim-okx"}
    assert info["exchange_urls"].startswith("binance=http://127.0.0.1:")


async def test_kafka_clients_stay_behind_the_proxy(faults: StackConfig) -> None:
    info = status(faults)
    producer = AIOKafkaProducer(bootstrap_servers=info["kafka"])
    await producer.start()
    try:
        brokers = producer.client.cluster.brokers()
        assert {f"{b.host}:{b.port}" for b in brokers} == {info["kafka"]}
    finally:
        await producer.stop()


async def test_latency_toxic_and_cut_proxy_reach_the_client(faults: StackConfig) -> None:
    info = status(faults)
    address = _redis_proxy(info)
    answer, quick = await asyncio.to_thread(_ping, address)
    assert answer.startswith(b"+PONG")
    async with Toxiproxy(info["toxiproxy"]) as api:
        name = await api.add_toxic("redis", Toxic("latency", {"latency": 300}))
        try:
            answer, slow = await asyncio.to_thread(_ping, address)
        finally:
            await api.remove_toxic("redis", name)
        assert answer.startswith(b"+PONG") and slow >= 0.3 > quick
        await api.update("redis", enabled=False)
        try:
            answer, _ = await asyncio.to_thread(_ping, address)
            assert answer == b"", "a disabled proxy must not answer"
        finally:
            await api.update("redis", enabled=True)
        assert (await asyncio.to_thread(_ping, address))[0].startswith(b"+PONG")
        with pytest.raises(ToxiproxyError, match=r"404|not found"):
            await api.remove_toxic("redis", "no-such-toxic")
