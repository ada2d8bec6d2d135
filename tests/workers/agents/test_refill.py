"""Cold-tier refill (issue 14) with a real worker process: a private Redis or Memcached
restarted empty under it gets every key the worker holds back within 30 s, without any new
event or warm job; a refill never replaces a value written after the restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from tests._servers import PrivateServer
from tests.workers.agents.conftest import (
    Worker,
    analysis_key,
    eventually,
    send_candles,
    send_ticker,
    ticker,
)
from tiers import Envelope, MultiTierCache, encode
from topics import MARKET_BOOKS, key_for, symbol_key

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

SYMBOLS = ("FA/USDT", "FB/USDT", "FC/USDT")
MINUTE = 60_000
REFILL_GOAL_S = 30.0
EVENTS = 2 * len(SYMBOLS) + 2  # what ``feed`` sends


def now_ms() -> int:
    return int(time.time() * 1000)


async def feed(producer: AIOKafkaProducer, namespace: str, t0: int) -> None:
    """Two tickers per symbol, a book top and a candle series of the first."""
    for i in range(2):
        for symbol in SYMBOLS:
            value = ticker("binance", symbol, 100.0 + i, t0 + i, bid=99.0, ask=101.0)
            await send_ticker(producer, namespace, "binance", symbol, value)
    symbol = SYMBOLS[0]
    book = {
        "exchange": "binance", "symbol": symbol, "bids": [[99.0, 1.0]], "asks": [[101.0, 2.0]],
        "as_of_ms": t0, "received_ms": t0,
    }  # fmt: skip
    await producer.send(
        MARKET_BOOKS.named(namespace), orjson.dumps(book),
        key=symbol_key("binance", symbol).encode(),
    )  # fmt: skip
    first = (t0 // MINUTE - 30) * MINUTE
    rows = [[first + i * MINUTE, 100.0, 101.0, 99.0, 100.5, 1.0] for i in range(30)]
    candles = {
        "exchange": "binance", "symbol": symbol, "timeframe": "1m", "rows": rows,
        "as_of_ms": rows[-1][0], "received_ms": t0,
    }  # fmt: skip
    await send_candles(producer, namespace, "binance", symbol, orjson.dumps(candles))
    await producer.flush()


def every_key(namespace: str) -> list[str]:
    keys = [
        analysis_key(namespace, data_type, "binance", symbol)
        for symbol in SYMBOLS
        for data_type in ("tickers", "volatility", "signals")
    ]
    keys.append(analysis_key(namespace, "books", "binance", SYMBOLS[0]))
    keys.append(key_for("candles", "binance", SYMBOLS[0], "1m", prefix=namespace.rstrip(".")))
    return keys


def refills(worker: Worker, tier: str, stage: str) -> float:
    return worker.counter("warmfleet_agent_refills_total", tier=tier, stage=stage)


async def held(cache: MultiTierCache, keys: list[str]) -> dict[str, tuple[Any, int]] | None:
    """``key -> (value, as_of)`` when the tier holds every key, else None."""
    hits = await cache.get_many(keys, max_stale=3600)
    if any(h is None for h in hits):
        return None
    return {k: (h.value, h.as_of) for k, h in zip(keys, hits, strict=True) if h is not None}


async def restarted_and_refilled(
    server: PrivateServer, cache: MultiTierCache, keys: list[str], worker: Worker, tier: str
) -> float:
    """Restart ``server`` empty under the worker; seconds until it holds ``keys`` again
    (asserting they are what it held before and that no event came in meanwhile)."""
    before = await eventually(lambda: held(cache, keys), timeout_s=60)

    async def all_processed() -> bool:
        done = await asyncio.to_thread(worker.counter, "warmfleet_agent_events_processed_total")
        return done == EVENTS

    await eventually(all_processed, timeout_s=30)
    # the start-up refill (nothing held yet) is done
    await eventually(lambda: asyncio.to_thread(refills, worker, tier, "finished"), timeout_s=30)
    finished = await asyncio.to_thread(refills, worker, tier, "finished")
    server.stop()
    server.start()  # no persistence: empty
    restarted = time.monotonic()
    after = await eventually(lambda: held(cache, keys), timeout_s=REFILL_GOAL_S, every_s=0.1)
    took = time.monotonic() - restarted
    assert after == before  # the very values, nothing lost or rewritten
    assert await asyncio.to_thread(refills, worker, tier, "finished") > finished
    assert await asyncio.to_thread(
        worker.counter, "warmfleet_agent_refill_keys_total", tier=tier, outcome="written"
    ) >= len(keys)  # fmt: skip
    assert await all_processed()  # no new event: the refill did it
    return took


@pytest.mark.parametrize(("kind", "variable"), [
    ("redis", "WARMFLEET_REDIS_URL"), ("memcached", "WARMFLEET_MEMCACHED_URL"),
])  # fmt: skip
async def test_a_private_tier_restarted_empty_gets_its_keys_back_within_30_s(
    kind: str, variable: str, start_worker: Any, worker_env: dict[str, str],
    private_server: Callable[..., PrivateServer], producer: AIOKafkaProducer, namespace: str,
) -> None:  # fmt: skip
    server = private_server(kind)
    worker_env[variable] = server.url  # start_worker reads this very dict
    worker = start_worker()
    await feed(producer, namespace, now_ms() - 5_000)
    only = MultiTierCache.from_urls(server.url, invalidation_channel=None)
    try:
        took = await restarted_and_refilled(server, only, every_key(namespace), worker, kind)
        assert took < REFILL_GOAL_S
    finally:
        await only.close()


async def test_a_refill_never_replaces_a_value_written_after_the_tier_emptied(
    start_worker: Any, worker_env: dict[str, str], private_server: Callable[..., PrivateServer],
    producer: AIOKafkaProducer, namespace: str,
) -> None:  # fmt: skip
    rd = private_server("redis")
    worker_env["WARMFLEET_REDIS_URL"] = rd.url
    worker = start_worker()
    t0 = now_ms() - 5_000
    await feed(producer, namespace, t0)
    keys = every_key(namespace)
    newer_key = analysis_key(namespace, "tickers", "binance", SYMBOLS[1])
    redis_only = MultiTierCache.from_urls(rd.url, invalidation_channel=None)
    client = aioredis.from_url(rd.url)
    try:
        before = await eventually(lambda: held(redis_only, keys), timeout_s=60)
        await eventually(lambda: asyncio.to_thread(refills, worker, "redis", "finished"))
        assert before[newer_key][1] == t0 + 1
        # the tier empties, and another writer (a newer poll through another worker) lands
        # before this worker notices: in one transaction, so the worker cannot see between
        newer = {**before[newer_key][0], "last": 555.0, "as_of_ms": t0 + 2}
        body = encode(Envelope(newer, t0 + 2, now_ms(), "other-worker"), newer_key)
        async with client.pipeline(transaction=True) as tx:
            tx.flushall()
            tx.set(newer_key, body, px=600_000)
            await tx.execute()
        after = await eventually(lambda: held(redis_only, keys), timeout_s=REFILL_GOAL_S)
        assert after[newer_key] == (newer, t0 + 2)  # the newer value stood
        assert {k: v for k, v in after.items() if k != newer_key} == {
            k: v for k, v in before.items() if k != newer_key
        }  # everything else refilled as it was
        assert await asyncio.to_thread(
            worker.counter, "warmfleet_agent_refill_keys_total", tier="redis", outcome="refused"
        ) >= 1  # fmt: skip
    finally:
        await client.aclose()
        await redis_only.close()
