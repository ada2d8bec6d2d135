"""Real worker processes (`python -m workers.cli worker`) against the real stack."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from topics import CONTROL_PHASE, DEAD_LETTER, MARKET_OHLCV, MARKET_TICKERS, key_for, symbol_key
from topics.kafka import ensure_topics

ROOT = Path(__file__).resolve().parents[3]
LOGLEVEL = os.environ.get("AGENTS_TEST_LOGLEVEL", "info")  # Faust's own log level in workers
T0 = (int(time.time()) - 600) * 1000  # as_of of the test data: the contract refuses a day old


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Worker:
    def __init__(self, env: dict[str, str], log: Path, args: tuple[str, ...] = ()) -> None:
        self.log = log
        self.metrics_port = free_port()
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "workers.cli", "worker", "-l", LOGLEVEL, *args],
                env={**env, "WARMFLEET_METRICS_PORT": str(self.metrics_port)},
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, sig: int = signal.SIGTERM, wait_s: float = 60.0) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        return self.proc.wait(wait_s)

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as resp:
            return str(resp.read().decode())

    def log_events(self, event: str) -> list[dict[str, Any]]:
        """The worker's structlog JSON lines named ``event`` (Faust's own lines skipped)."""
        found = []
        for line in self.log.read_bytes().splitlines():
            if line.startswith(b"{"):
                fields = orjson.loads(line)
                if fields.get("event") == event:
                    found.append(fields)
        return found

    def counter(self, name: str, **labels: str) -> float:
        """The sum of the worker's ``name`` series carrying ``labels``; 0 while its metrics
        endpoint is not up yet."""
        try:
            text = self.metrics()
        except OSError:
            return 0.0
        wanted = [f'{k}="{v}"' for k, v in labels.items()]
        total = 0.0
        for line in text.splitlines():
            series, _, value = line.rpartition(" ")
            if series.partition("{")[0] == name and all(w in series for w in wanted):
                total += float(value)
        return total


@pytest.fixture
def worker_env(namespace: str, stack_urls: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARMFLEET_")}
    env.update(
        WARMFLEET_NAMESPACE=namespace,
        WARMFLEET_KEY_PREFIX=namespace.rstrip("."),
        WARMFLEET_KAFKA_URL=stack_urls.kafka_url,
        WARMFLEET_REDIS_URL=stack_urls.redis_url,
        WARMFLEET_MEMCACHED_URL=stack_urls.memcached_url,
        WARMFLEET_LOG_FORMAT="json",
        WARMFLEET_LOG_LEVEL=os.environ.get("AGENTS_TEST_WF_LOGLEVEL", "INFO"),
    )
    return env


@pytest.fixture
def start_worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []

    def start(*args: str) -> Worker:
        logs = Path(os.environ.get("AGENTS_TEST_LOGS", tmp_path))
        name = f"{worker_env['WARMFLEET_NAMESPACE']}worker{len(workers)}.log"
        worker = Worker(worker_env, logs / name, args)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        try:
            worker.stop(signal.SIGTERM, wait_s=30)
        except subprocess.TimeoutExpired:
            worker.stop(signal.SIGKILL)


@pytest.fixture
async def topics_ready(kafka_bootstrap: str, namespace: str) -> str:
    await ensure_topics(kafka_bootstrap, namespace)
    return namespace


@pytest.fixture
async def producer(kafka_bootstrap: str, topics_ready: str) -> AsyncIterator[AIOKafkaProducer]:
    prod = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=2)
    await prod.start()
    yield prod
    await prod.stop()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


def ticker(exchange: str, symbol: str, last: float, as_of_ms: int, **extra: Any) -> bytes:
    body: dict[str, Any] = {
        "exchange": exchange, "symbol": symbol, "last": last, "bid": None, "ask": None,
        "high": None, "low": None, "open": None, "base_volume": None, "quote_volume": None,
        "change_pct": None, "as_of_ms": as_of_ms, "received_ms": as_of_ms,
        "__faust": {"ns": "topics.records.Ticker"},
    }  # fmt: skip
    body.update(extra)
    return orjson.dumps(body)


async def send_ticker(
    producer: AIOKafkaProducer, namespace: str, exchange: str, symbol: str, value: bytes
) -> None:
    await producer.send(
        MARKET_TICKERS.named(namespace), value, key=symbol_key(exchange, symbol).encode()
    )


async def send_candles(
    producer: AIOKafkaProducer, namespace: str, exchange: str, symbol: str, value: bytes
) -> None:
    await producer.send(
        MARKET_OHLCV.named(namespace), value, key=symbol_key(exchange, symbol).encode()
    )


async def set_phase(producer: AIOKafkaProducer, namespace: str, **intervals: float) -> None:
    body = {
        "phase": "market_hours", "intervals_s": intervals, "at_ms": int(time.time() * 1000),
        "next_transition_ms": None, "__faust": {"ns": "topics.records.PhaseChange"},
    }  # fmt: skip
    await producer.send_and_wait(CONTROL_PHASE.named(namespace), orjson.dumps(body), key=b"phase")


async def cached(redis_client: aioredis.Redis, key: str) -> dict[str, Any] | None:
    """The envelope Redis (L3) holds for ``key``, decoded; None when absent."""
    raw = await redis_client.get(key)
    return None if raw is None else dict(orjson.loads(raw))


async def feed_rounds(
    producer: AIOKafkaProducer, namespace: str, symbols: list[str], rounds: range,
    pause_s: float = 0.05, sent: Callable[[int], None] | None = None,
) -> None:  # fmt: skip
    """One ticker per symbol per round (as_of ``T0 + round``); a duplicate of every tenth
    round, which must not count."""
    for i in rounds:
        for symbol in symbols:
            value = ticker("binance", symbol, price(i), T0 + i)
            await send_ticker(producer, namespace, "binance", symbol, value)
            if i % 10 == 3:
                await send_ticker(producer, namespace, "binance", symbol, value)
        await producer.flush()
        if sent is not None:
            sent(i)
        await asyncio.sleep(pause_s)


def price(i: int) -> float:
    """The price of round ``i`` of ``feed_rounds``."""
    return 100.0 + (i % 7) - (i % 3) * 0.5


async def assert_last_round(redis_client: aioredis.Redis, keys: list[str], rounds: int) -> None:
    """Every key's envelope in Redis holds the last of ``rounds`` rounds of ``feed_rounds``."""
    for key in keys:
        env = await cached(redis_client, key)
        assert env is not None, key
        assert env["a"] == T0 + rounds - 1 and env["v"]["last"] == price(rounds - 1)


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout_s: float = 60.0, every_s: float = 0.2
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the last answer."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every_s)
    raise AssertionError(f"condition not met within {timeout_s} s; last answer {last!r}")


async def dead_letters(
    bootstrap: str, namespace: str, at_least: int = 1, within_s: float = 30.0
) -> list[dict[str, Any]]:
    """The namespace's dead letters, decoded, read from the start until ``at_least`` are
    there (fails the test if they do not come within ``within_s``)."""
    consumer = AIOKafkaConsumer(
        DEAD_LETTER.named(namespace), bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        group_id=None, max_partition_fetch_bytes=4 * 1024 * 1024,  # letters up to the cap
    )  # fmt: skip
    await consumer.start()
    letters: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(within_s):
            while len(letters) < at_least:
                batch = await consumer.getmany(timeout_ms=500)
                letters += [orjson.loads(r.value) for rs in batch.values() for r in rs if r.value]
    finally:
        await consumer.stop()
    return letters


def analysis_key(namespace: str, data_type: str, exchange: str, symbol: str) -> str:
    return key_for(data_type, exchange, symbol, prefix=namespace.rstrip("."))


def memcached_ttl(addr: str, key: str) -> int | None:
    """Remaining TTL seconds memcached reports for ``key`` (meta get ``mg <key> t``)."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=2) as sock:
        sock.sendall(f"mg {key} t\r\n".encode())
        line = sock.makefile("rb").readline().decode().strip()
    if not line.startswith("HD"):
        return None
    for flag in line.split()[1:]:
        if flag.startswith("t"):
            return int(flag[1:])
    return None
