"""Issue 12 end to end on the real stack (Kafka -> a worker process -> L1/L2/L3): the
poison set is dead-lettered and never reaches a table or a tier, the real updates after it
are cached; a state poisoned before the contract existed is healed when it is loaded."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from tests.workers.agents.conftest import (
    analysis_key,
    cached,
    dead_letters,
    eventually,
    send_ticker,
    ticker,
)
from topics import MARKET_TICKERS, TICKER_FIELDS, symbol_key
from topics.kafka import ensure_topics
from topics.records import DEAD_LETTER_PAYLOAD_MAX
from workers.agents import CHANGELOGS
from workers.analytics import TickerState

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

YEAR_MS = 365 * 86_400_000


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_the_poison_set_is_dead_lettered_and_the_real_updates_after_it_cached(
    start_worker: Any, producer: AIOKafkaProducer, namespace: str,
    redis_client: aioredis.Redis, kafka_bootstrap: str,
) -> None:  # fmt: skip
    symbol, t0 = "ZEC/USDT", now_ms() - 60_000
    real = {"bid": 29.9, "ask": 30.1, "high": 31.0, "low": 29.0, "quote_volume": 3000.0}
    poison = {  # issue 12's hostile producer, each next to a real-looking ticker
        "future": {"as_of_ms": now_ms() + 10 * YEAR_MS},
        "1970": {"as_of_ms": 1000},
        "denormal": {"last": 1e-300},
        "crossed": {"bid": 99.0, "ask": 1.0},
        "extra": {"injected": {"admin": True}},
        "padding": {"padding": "x" * 900_000},
        "script": {"high": "<script>alert(1)</script>"},
        "received": {"received_ms": "yesterday"},
    }
    await send_ticker(producer, namespace, "binance", symbol,
                      ticker("binance", symbol, 30.0, t0, **real))  # fmt: skip
    for i, change in enumerate(poison.values(), start=1):
        body = {**orjson.loads(ticker("binance", symbol, 30.0, t0 + i, **real)), **change}
        await send_ticker(producer, namespace, "binance", symbol, orjson.dumps(body))
    for i in range(20, 23):
        await send_ticker(producer, namespace, "binance", symbol,
                          ticker("binance", symbol, 30.0 + i / 100, t0 + i, **real))  # fmt: skip
    await producer.flush()
    worker = start_worker()

    ticker_key = analysis_key(namespace, "tickers", "binance", symbol)
    volatility_key = analysis_key(namespace, "volatility", "binance", symbol)

    async def latest() -> dict[str, Any] | None:
        env = await cached(redis_client, ticker_key)
        return env if env is not None and env["a"] == t0 + 22 else None

    env = await eventually(latest, timeout_s=60)
    assert set(env["v"]) == set(TICKER_FIELDS)  # no injected, no padding, no __faust
    assert env["v"]["last"] == 30.22 and env["v"]["high"] == 31.0
    analysis = await cached(redis_client, volatility_key)
    assert analysis is not None and analysis["v"]["observations"] == 4  # the real four only
    assert analysis["v"]["volatility"] < 0.01  # 1e-300 never became a return

    letters = await dead_letters(kafka_bootstrap, namespace, len(poison), within_s=60)
    assert len(letters) == len(poison)
    assert all(letter["source_topic"] == MARKET_TICKERS.named(namespace) for letter in letters)
    reasons = " ".join(letter["reason"] for letter in letters)
    for expected in ("timestamp_in_future", "timestamp_too_old", "price_out_of_bounds",
                     "crossed_quote", "unknown_field", "oversized", "wrong_type: high",
                     "wrong_type: received_ms"):  # fmt: skip
        assert expected in reasons, (expected, reasons)
    padded = next(letter for letter in letters if "oversized" in letter["reason"])
    # the first 64 KiB of the original kept, and its size: a 1.2 MB letter would never fit
    # the broker's message limit and would wedge the stream (it did)
    assert len(base64.b64decode(padded["payload_b64"])) == DEAD_LETTER_PAYLOAD_MAX
    assert padded["payload_bytes"] > 900_000
    assert await asyncio.to_thread(
        worker.counter, "warmfleet_agent_deadletter_total", reason="invalid"
    ) == len(poison)  # fmt: skip


async def test_a_future_state_in_the_changelog_is_healed_at_load(
    start_worker: Any, producer: AIOKafkaProducer, namespace: str,
    redis_client: aioredis.Redis, kafka_bootstrap: str,
) -> None:  # fmt: skip
    """Before the contract, one ticker dated ten years ahead froze its symbol for good: it
    lived in the table's changelog and every real update was "older"."""
    symbol, t0 = "ZEC/USDT", now_ms() - 60_000
    table_key = symbol_key("binance", symbol).encode()
    every = list(range(MARKET_TICKERS.partitions))
    partition = int(DefaultPartitioner()(table_key, every, every))
    poisoned = TickerState(
        exchange="binance", symbol=symbol, last=30.0, as_of_ms=now_ms() + 10 * YEAR_MS,
        variance=0.0, momentum=0.0, last_return=None, breakout=False, returns=0,
        observations=1, vwap=None, spread_bps=None, change_pct=None, quote_volume=None,
    )  # fmt: skip
    await ensure_topics(kafka_bootstrap, namespace, CHANGELOGS)
    await producer.send_and_wait(
        CHANGELOGS[0].named(namespace),
        orjson.dumps({**poisoned.to_dict(), "partition": partition}),
        key=table_key, partition=partition,
    )  # fmt: skip
    for i in range(3):
        await send_ticker(producer, namespace, "binance", symbol,
                          ticker("binance", symbol, 30.0 + i, t0 + i))  # fmt: skip
    await producer.flush()
    worker = start_worker()
    key = analysis_key(namespace, "volatility", "binance", symbol)

    async def real() -> dict[str, Any] | None:
        env = await cached(redis_client, key)
        return env if env is not None and env["v"]["observations"] == 3 else None

    env = await eventually(real, timeout_s=60)
    assert env["a"] == t0 + 2 and env["v"]["last"] == 32.0
    healed = worker.log_events("future_state_discarded")
    assert [h["key"] for h in healed] == ["binance:ZEC/USDT"]
    assert healed[0]["as_of_ms"] == poisoned.as_of_ms
