"""Book tops and candle series cached by the agents (issue 15), end to end on the real
stack: records on ``market.books`` / ``market.ohlcv`` -> a worker process -> the values, as
docs/contracts.md spells them, in Memcached and Redis with their own TTLs; older and
duplicate records never replace newer ones; bad books are dead-lettered."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from tests.workers.agents.conftest import (
    analysis_key,
    cached,
    dead_letters,
    eventually,
    free_port,
    memcached_ttl,
    send_candles,
)
from tiers import MultiTierCache
from topics import MARKET_BOOKS, MARKET_OHLCV, key_for, symbol_key

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

MINUTE = 60_000


def now_ms() -> int:
    return int(time.time() * 1000)


def book(symbol: str, bids: list[list[float]], asks: list[list[float]], as_of: int) -> bytes:
    return orjson.dumps(
        {
            "exchange": "binance", "symbol": symbol, "bids": bids, "asks": asks,
            "as_of_ms": as_of, "received_ms": as_of, "__faust": {"ns": "topics.records.BookTop"},
        }
    )  # fmt: skip


async def send_book(producer: AIOKafkaProducer, namespace: str, symbol: str, value: bytes) -> None:
    await producer.send(
        MARKET_BOOKS.named(namespace), value, key=symbol_key("binance", symbol).encode()
    )


def rows(first_open: int, n: int, close: float = 100.0) -> list[list[float]]:
    """``n`` valid one-minute rows from ``first_open``."""
    return [
        [first_open + i * MINUTE, close, close + 1.0, close - 1.0, close + 0.5, 10.0 + i]
        for i in range(n)
    ]


def candles(symbol: str, polled: list[list[float]], received: int) -> bytes:
    return orjson.dumps(
        {
            "exchange": "binance", "symbol": symbol, "timeframe": "1m", "rows": polled,
            "as_of_ms": int(polled[-1][0]), "received_ms": received,
            "__faust": {"ns": "topics.records.Candles"},
        }
    )  # fmt: skip


def http_get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, orjson.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (urllib.error.URLError, OSError):
        return 0, None


def candles_key(namespace: str, symbol: str) -> str:
    return key_for("candles", "binance", symbol, "1m", prefix=namespace.rstrip("."))


async def test_book_tops_are_cached_in_every_tier_and_only_newer_ones_replace_them(
    start_worker: Any, producer: AIOKafkaProducer, namespace: str,
    redis_client: aioredis.Redis, memcached_addr: str, kafka_bootstrap: str,
) -> None:  # fmt: skip
    symbol, t0 = "BK/USDT", now_ms() - 30_000
    bids = [[100.0 - i * 0.5, 1.0 + i] for i in range(5)]
    asks = [[100.5 + i * 0.5, 2.0 + i] for i in range(4)]
    newer_bids = [[101.0, 3.0], [100.9, 1.0]]
    newer_asks = [[101.2, 1.5], [101.3, 0.5]]
    crossed = book(symbol, [[102.0, 1.0]], [[101.0, 1.0]], t0 + 2_000)
    worker = start_worker()
    await send_book(producer, namespace, symbol, book(symbol, bids, asks, t0))
    await producer.flush()
    key = analysis_key(namespace, "books", "binance", symbol)
    assert key.endswith(":market:book:15s:binance:BK/USDT")

    async def at(as_of: int) -> dict[str, Any] | None:
        env = await cached(redis_client, key)
        return env if env is not None and env["a"] == as_of else None

    env = await eventually(lambda: at(t0))
    assert env["v"] == {
        "exchange": "binance", "symbol": symbol, "bids": bids, "asks": asks,
        "best_bid": 100.0, "best_ask": 100.5, "depth": 5,
    }  # fmt: skip
    # the books row of the TTL policy: Memcached ~30 s (+-10 %), Redis fresh >= the warm
    # interval's coverage and kept for the stale window behind it
    assert 25 <= (memcached_ttl(memcached_addr, key) or 0) <= 34
    fresh_s = (env["f"] - env["w"]) / 1000
    assert 30 <= fresh_s <= 3600
    assert await redis_client.pttl(key) > (fresh_s + 3000) * 1000

    # a newer book replaces it; an older one, a duplicate and a crossed one do not
    for value in (
        book(symbol, newer_bids, newer_asks, t0 + 1_000),
        book(symbol, bids, asks, t0 + 500),
        book(symbol, bids, asks, t0),
        crossed,
    ):
        await send_book(producer, namespace, symbol, value)
    await producer.flush()
    env = await eventually(lambda: at(t0 + 1_000))
    assert (env["v"]["best_bid"], env["v"]["best_ask"], env["v"]["depth"]) == (101.0, 101.2, 2)
    memcached = MultiTierCache.from_urls(f"memcached://{memcached_addr}", invalidation_channel=None)
    try:
        hit = await memcached.get(key)
        assert hit is not None and hit.value == env["v"] and hit.as_of == t0 + 1_000
    finally:
        await memcached.close()

    letters = await dead_letters(kafka_bootstrap, namespace)
    assert len(letters) == 1 and "crossed_book" in letters[0]["reason"]
    assert base64.b64decode(letters[0]["payload_b64"]) == crossed
    assert letters[0]["source_topic"] == MARKET_BOOKS.named(namespace)

    def stale() -> float:
        return worker.counter(
            "warmfleet_agent_stale_skipped_total", topic=MARKET_BOOKS.named(namespace)
        )

    assert await eventually(lambda: asyncio.to_thread(stale)) == 2  # the older two
    assert await redis_client.get(key) is not None  # nothing else touched it


async def test_candle_rows_are_merged_by_open_time_and_capped_at_500(
    start_worker: Any, producer: AIOKafkaProducer, namespace: str,
    redis_client: aioredis.Redis, memcached_addr: str,
) -> None:  # fmt: skip
    symbol = "CD/USDT"
    now = now_ms()
    first_open = (now // MINUTE) * MINUTE - 600 * MINUTE
    poll_a = rows(first_open, 300)  # minutes 0..299
    poll_b = rows(first_open + 290 * MINUTE, 60, close=110.0)  # 290..349: 10 overlap, revised
    revised = [list(r) for r in poll_b]
    revised[-1][2:5] = [112.0, 109.0, 111.25]  # the last candle again, still open: new close
    poll_c = rows(first_open + 350 * MINUTE, 200, close=120.0)  # 350..549: past 500 in all
    worker = start_worker()
    key = candles_key(namespace, symbol)
    assert key.endswith(":market:candles:1m:binance:CD/USDT:1m")

    async def series(last_open: int, last_close: float) -> dict[str, Any] | None:
        env = await cached(redis_client, key)
        if env is None or env["v"]["rows"][-1][0] != last_open:
            return None
        return env if env["v"]["rows"][-1][4] == last_close else None

    await send_candles(producer, namespace, "binance", symbol, candles(symbol, poll_a, now))
    await producer.flush()
    env = await eventually(lambda: series(poll_a[-1][0], poll_a[-1][4]))
    assert env["v"] == {"exchange": "binance", "symbol": symbol, "timeframe": "1m",
                        "rows": poll_a}  # fmt: skip
    assert env["a"] == poll_a[-1][0]
    assert 50 <= (memcached_ttl(memcached_addr, key) or 0) <= 67  # the candles row: ~60 s

    await send_candles(producer, namespace, "binance", symbol, candles(symbol, poll_b, now + 1))
    await producer.flush()
    env = await eventually(lambda: series(poll_b[-1][0], poll_b[-1][4]))
    got = env["v"]["rows"]
    assert got == poll_a[:290] + poll_b  # merged by open_ms, the new poll's rows win
    # the last candle revised (same as_of, received later), then a replay of the older
    # poll: the revision is kept, the replay changes nothing
    await send_candles(producer, namespace, "binance", symbol, candles(symbol, revised, now + 2))
    await send_candles(producer, namespace, "binance", symbol, candles(symbol, poll_b, now + 1))
    await producer.flush()
    env = await eventually(lambda: series(revised[-1][0], 111.25))
    assert env["v"]["rows"] == poll_a[:290] + revised

    await send_candles(producer, namespace, "binance", symbol, candles(symbol, poll_c, now + 3))
    await producer.flush()
    env = await eventually(lambda: series(poll_c[-1][0], poll_c[-1][4]))
    got = env["v"]["rows"]
    assert len(got) == 500
    assert got == (poll_a[:290] + revised + poll_c)[-500:]  # the latest 500, oldest first
    assert [r[0] for r in got] == sorted(r[0] for r in got)
    await asyncio.sleep(1.0)  # the replay, if it were to land, has had its chance
    env = await cached(redis_client, key)
    assert env is not None and env["v"]["rows"] == got

    assert await asyncio.to_thread(
        worker.counter, "warmfleet_agent_stale_skipped_total", topic=MARKET_OHLCV.named(namespace)
    ) == 1  # the replay  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_the_simulator_s_books_and_candles_reach_the_tiers_through_the_poller(
    stack_urls: Any, namespace: str, redis_client: aioredis.Redis, tmp_path: Any
) -> None:
    """`warmfleet run` as a user runs it (simulator -> ccxt poller -> Kafka -> worker ->
    reader): the book top and the candles of a symbol being read land in the tiers under the
    contract's keys and come back over HTTP."""
    reader, sim, metrics = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "WARMFLEET_NAMESPACE": namespace, "WARMFLEET_KEY_PREFIX": namespace.rstrip("."),
        "WARMFLEET_KAFKA_URL": stack_urls.kafka_url, "WARMFLEET_REDIS_URL": stack_urls.redis_url,
        "WARMFLEET_MEMCACHED_URL": stack_urls.memcached_url, "WARMFLEET_HOME": str(tmp_path),
    }  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.cli", "run", "--phase", "market_hours", "--no-live",
        "--reader-port", str(reader), "--sim-port", str(sim), "--metrics-base", str(metrics),
        "--read-rate", "5", "--duration", "200",
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    book_key = analysis_key(namespace, "books", "binance", "BTC/USDT")
    rows_key = candles_key(namespace, "BTC/USDT")
    base = f"http://127.0.0.1:{reader}"

    async def served(path: str) -> dict[str, Any] | None:
        # a read also makes the symbol hot, which is what makes the clock warm it
        status, body = await asyncio.to_thread(http_get, base + path)
        return body if status == 200 else None

    try:
        book_http = await eventually(lambda: served("/v2/books/binance/BTC-USDT"), 150, 1.0)
        rows_http = await eventually(
            lambda: served("/v2/candles/binance/BTC-USDT?timeframe=1m&limit=500"), 90, 1.0
        )
        book_env = await eventually(lambda: cached(redis_client, book_key), timeout_s=10)
        rows_env = await eventually(lambda: cached(redis_client, rows_key), timeout_s=10)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 60)
    # what the reader serves is the agents' value, as docs/contracts.md spells it
    assert set(book_http["value"]) == set(book_env["v"])
    assert book_http["value"]["exchange"] == "binance"
    assert rows_http["value"]["timeframe"] == "1m"
    value = book_env["v"]
    assert set(value) == {"exchange", "symbol", "bids", "asks", "best_bid", "best_ask", "depth"}
    assert (value["exchange"], value["symbol"]) == ("binance", "BTC/USDT")
    bids, asks = value["bids"], value["asks"]
    assert 1 <= value["depth"] <= 10 and value["depth"] == max(len(bids), len(asks))
    assert [b[0] for b in bids] == sorted((b[0] for b in bids), reverse=True)
    assert [a[0] for a in asks] == sorted(a[0] for a in asks)
    assert (value["best_bid"], value["best_ask"]) == (bids[0][0], asks[0][0])
    assert value["best_bid"] < value["best_ask"]
    candles_value = rows_env["v"]
    assert (candles_value["symbol"], candles_value["timeframe"]) == ("BTC/USDT", "1m")
    got = candles_value["rows"]
    assert 1 <= len(got) <= 500 and all(len(r) == 6 for r in got)
    assert [r[0] for r in got] == sorted({r[0] for r in got})  # oldest first, no repeats
    assert rows_env["a"] == got[-1][0]
