"""The symbol stream (``workers/agents/_symbols.py``) end to end: candles and tickers
combined, two workers sharing the partitions, a cache tier going away mid-stream, tables
recovered from a Faust-era changelog, and a graceful shutdown under load. Real Kafka,
Redis, Memcached and worker processes; nothing mocked."""

from __future__ import annotations

import asyncio
import base64
import math
import signal
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from tests._servers import PrivateServer
from tests.workers.agents.conftest import (
    T0,
    analysis_key,
    assert_last_round,
    cached,
    eventually,
    feed_rounds,
    send_candles,
    send_ticker,
    ticker,
)
from tiers import MultiTierCache
from topics import DEAD_LETTER, MARKET_OHLCV, MARKET_TICKERS, symbol_key
from topics.kafka import ensure_topics
from workers.agents import CHANGELOGS
from workers.analytics import (
    CandleState,
    TickerState,
    TickerView,
    candle_state,
    observe_ticker,
    symbol_analysis,
)

# the async fixtures live on the session loop (pyproject), so the tests do too
pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

PARTITIONS = MARKET_TICKERS.partitions
TICKS_CHANGELOG, CANDLES_CHANGELOG, SERIES_CHANGELOG = CHANGELOGS


# ---- helpers ----------------------------------------------------------------------------


def source_partition(key: bytes) -> int:
    """The partition Kafka's default partitioner gives ``key`` on the source topics."""
    every = list(range(PARTITIONS))
    return int(DefaultPartitioner()(key, every, every))


def symbols_on_every_partition(prefix: str, per_partition: int) -> list[str]:
    """Symbols ``{prefix}{i}/USDT`` chosen so that every source partition holds
    ``per_partition`` of them (so every worker of a group gets some)."""
    taken: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    i = 0
    while any(len(s) < per_partition for s in taken.values()):
        symbol = f"{prefix}{i}/USDT"
        chosen = taken[source_partition(symbol_key("binance", symbol).encode())]
        if len(chosen) < per_partition:
            chosen.append(symbol)
        i += 1
    return sorted(s for symbols in taken.values() for s in symbols)


async def counts(redis_client: aioredis.Redis, keys: list[str]) -> list[int]:
    """``observations`` of each analysis key (0 where absent), one MGET."""
    raw = await redis_client.mget(keys)
    return [0 if r is None else int(orjson.loads(r)["v"]["observations"]) for r in raw]


async def read_topic(
    bootstrap: str, topic: str, done: Callable[[list[Any]], bool], timeout_s: float = 30.0
) -> list[Any]:
    """Records of ``topic`` from its beginning until ``done(records)``."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(timeout_s):
            while not done(records):
                batch = await consumer.getmany(timeout_ms=500)
                records += [r for rs in batch.values() for r in rs]
    except TimeoutError:
        raise AssertionError(f"{topic}: only {len(records)} records in {timeout_s} s") from None
    finally:
        await consumer.stop()
    return records


async def all_at(redis_client: aioredis.Redis, keys: list[str], n: int, timeout_s: float) -> None:
    seen: list[int] = []

    async def check() -> bool:
        seen[:] = await counts(redis_client, keys)
        return all(c == n for c in seen)

    try:
        await eventually(check, timeout_s=timeout_s)
    except AssertionError:
        wrong = {k: c for k, c in zip(keys, seen, strict=True) if c != n}
        raise AssertionError(
            f"expected {n} observations each; {len(wrong)} differ: {wrong}"
        ) from None


# ---- 1. candles and tickers ---------------------------------------------------------------


def candle_rows(n: int, start_ms: int, shift: float) -> list[list[float]]:
    """``n`` valid OHLCV rows, one minute apart, with ups and downs (RSI strictly inside
    0..100, EMA(12) and EMA(26) defined)."""
    rows: list[list[float]] = []
    close = 100.0
    for i in range(n):
        open_ = close
        close = round(100.0 + 6.0 * math.sin((i + shift) / 3.0) + 0.15 * i, 4)
        high = round(max(open_, close) + 0.4 + (i % 3) * 0.1, 4)
        low = round(min(open_, close) - 0.3 - (i % 2) * 0.2, 4)
        rows.append([float(start_ms + i * 60_000), open_, high, low, close, 10.0 + i])
    return rows


def candles_message(symbol: str, rows: list[list[float]], as_of_ms: int) -> bytes:
    return orjson.dumps(
        {
            "exchange": "binance", "symbol": symbol, "timeframe": "1m",
            "rows": [[int(r[0]), *r[1:]] for r in rows], "as_of_ms": as_of_ms,
            "received_ms": as_of_ms, "__faust": {"ns": "topics.records.Candles"},
        }
    )  # fmt: skip


def ticker_fields(i: int) -> dict[str, Any]:
    last = 200.0 + (i % 4) * 1.5 - (i % 3)
    return {
        "last": last, "bid": last - 0.1, "ask": last + 0.1, "open": 195.0,
        "base_volume": 1000.0 + i, "quote_volume": (1000.0 + i) * 199.0, "change_pct": None,
    }  # fmt: skip


async def test_candles_and_tickers_combine_duplicates_skip_and_bad_candles_dead_letter(
    start_worker: Any, producer: AIOKafkaProducer, namespace: str,
    redis_client: aioredis.Redis, kafka_bootstrap: str,
) -> None:  # fmt: skip
    symbol = "CMB/USDT"
    ohlcv_topic = MARKET_OHLCV.named(namespace)
    rows_a = candle_rows(40, T0 - 40 * 60_000, shift=0.0)
    rows_b = candle_rows(41, T0 - 41 * 60_000, shift=1.0)  # none opens after its as_of
    candles_a = candles_message(symbol, rows_a, T0 + 100)
    candles_b = candles_message(symbol, rows_b, T0 + 200)
    bad_rows = [list(r) for r in rows_a]
    bad_rows[5][2] = bad_rows[5][4] - 1.0  # high below close
    malformed = [
        candles_message(symbol, bad_rows, T0 + 300),
        candles_message(symbol, [], T0 + 301),
    ]

    expected_ticks: TickerState | None = None
    for i in range(5):
        fields = ticker_fields(i)
        await send_ticker(producer, namespace, "binance", symbol,
                          ticker("binance", symbol, as_of_ms=T0 + i, **fields))  # fmt: skip
        view_fields = {k: v for k, v in fields.items() if k != "last"}
        expected_ticks = observe_ticker(
            expected_ticks,
            TickerView("binance", symbol, fields["last"], as_of_ms=T0 + i, **view_fields),
        )
    assert expected_ticks is not None
    await send_candles(producer, namespace, "binance", symbol, candles_a)
    await send_candles(producer, namespace, "binance", symbol, candles_a)  # same batch, likely
    for value in malformed:
        await send_candles(producer, namespace, "binance", symbol, value)
    await producer.flush()
    worker = start_worker()
    key = analysis_key(namespace, "volatility", "binance", symbol)

    expected_a = candle_state("binance", symbol, "1m", rows_a, T0 + 100, None)
    assert None not in (expected_a.rsi, expected_a.ema_fast, expected_a.ema_slow, expected_a.atr)

    async def analysis_at(as_of: int, observations: int) -> dict[str, Any] | None:
        # the two topics are fetched independently: wait for both to be folded in
        env = await cached(redis_client, key)
        if env is None or (env["a"], env["v"]["observations"]) != (as_of, observations):
            return None
        return dict(env["v"])

    got = await eventually(lambda: analysis_at(T0 + 100, 5))
    assert got == symbol_analysis(expected_ticks, expected_a, computed_ms=got["computed_ms"])
    assert (got["observations"], got["last"]) == (5, expected_ticks.last)
    assert got["rsi"] == expected_a.rsi and got["atr"] == expected_a.atr

    # the same window again after it was handled (from the table, not the batch), then a
    # newer one and a newer ticker
    await send_candles(producer, namespace, "binance", symbol, candles_a)
    await send_candles(producer, namespace, "binance", symbol, candles_b)
    fields = ticker_fields(5)
    await send_ticker(producer, namespace, "binance", symbol,
                      ticker("binance", symbol, as_of_ms=T0 + 5, **fields))  # fmt: skip
    await producer.flush()
    expected_ticks = observe_ticker(
        expected_ticks,
        TickerView("binance", symbol, fields["last"], as_of_ms=T0 + 5,
                   **{k: v for k, v in fields.items() if k != "last"}),
    )  # fmt: skip
    expected_b = candle_state("binance", symbol, "1m", rows_b, T0 + 200, expected_a)
    assert expected_b.observations == 2

    got = await eventually(lambda: analysis_at(T0 + 200, 6))
    assert got == symbol_analysis(expected_ticks, expected_b, computed_ms=got["computed_ms"])
    assert (got["rsi"], got["ema_fast"], got["ema_slow"], got["atr"]) == (
        expected_b.rsi, expected_b.ema_fast, expected_b.ema_slow, expected_b.atr,
    )  # fmt: skip

    # the table's history: two windows counted, the duplicates never
    changelog = CANDLES_CHANGELOG.named(namespace)
    table_key = symbol_key("binance", symbol).encode()

    def has_b(records: list[Any]) -> bool:
        return any(r.key == table_key and orjson.loads(r.value)["as_of_ms"] == T0 + 200
                   for r in records)  # fmt: skip

    records = await read_topic(kafka_bootstrap, changelog, has_b)
    states = [CandleState.from_dict(orjson.loads(r.value)) for r in records if r.key == table_key]
    assert states == [expected_a, expected_b]
    assert await asyncio.to_thread(
        worker.counter, "warmfleet_agent_stale_skipped_total", topic=ohlcv_topic
    ) == 2  # fmt: skip

    letters = [
        orjson.loads(r.value)
        for r in await read_topic(
            kafka_bootstrap, DEAD_LETTER.named(namespace), lambda rs: len(rs) >= 2
        )
    ]
    by_payload = {base64.b64decode(letter["payload_b64"]): letter for letter in letters}
    assert set(by_payload) == set(malformed)
    assert "high/low do not bound open/close" in by_payload[malformed[0]]["reason"]
    assert "rows must be a non-empty list" in by_payload[malformed[1]]["reason"]
    assert all(letter["source_topic"] == ohlcv_topic for letter in letters)
    assert all(letter["key"] == table_key.decode() for letter in letters)


# ---- 2. two workers -------------------------------------------------------------------------


@pytest.mark.slow
async def test_two_workers_share_the_partitions_and_one_takes_over_after_sigterm(
    start_worker: Any, producer: AIOKafkaProducer, namespace: str, redis_client: aioredis.Redis
) -> None:
    symbols = symbols_on_every_partition("TW", per_partition=3)
    keys = [analysis_key(namespace, "volatility", "binance", s) for s in symbols]
    tickers_topic = MARKET_TICKERS.named(namespace)
    first, second = start_worker(), start_worker()

    def consumed() -> tuple[float, float]:
        return (
            first.counter("warmfleet_agent_events_total", topic=tickers_topic),
            second.counter("warmfleet_agent_events_total", topic=tickers_topic),
        )

    # feed until both workers have consumed tickers of their own partitions
    rounds = 0
    while True:
        await feed_rounds(producer, namespace, symbols, range(rounds, rounds + 5))
        rounds += 5
        if rounds >= 20 and all(await asyncio.to_thread(consumed)):
            break
        assert rounds < 600, f"both workers never consumed: {await asyncio.to_thread(consumed)}"
    await all_at(redis_client, keys, rounds, timeout_s=30)
    assert all(await asyncio.to_thread(consumed))

    # SIGTERM one while tickers keep coming: the other takes its partitions over
    total = rounds + 80
    feeding = asyncio.create_task(feed_rounds(producer, namespace, symbols, range(rounds, total)))
    try:

        async def progressed() -> bool:
            return sum(await counts(redis_client, keys)) > (rounds + 10) * len(symbols)

        await eventually(progressed, timeout_s=30)
        assert await asyncio.to_thread(first.stop, signal.SIGTERM, 30) == 0
    finally:
        await feeding
    await all_at(redis_client, keys, total, timeout_s=45)
    assert first.log_events("symbol_stream_stopped")
    taken = second.log_events("partitions_assigned")
    assert taken and taken[-1]["partitions"] == list(range(PARTITIONS))
    assert second.proc.poll() is None
    await assert_last_round(redis_client, keys, total)


# ---- 3. a cache server going away ---------------------------------------------------------


@pytest.mark.slow
async def test_redis_going_away_mid_stream_does_not_stop_the_worker(
    start_worker: Any, worker_env: dict[str, str], private_server: Callable[..., PrivateServer],
    producer: AIOKafkaProducer, namespace: str, memcached_addr: str,
) -> None:  # fmt: skip
    rd = private_server("redis")
    worker_env["WARMFLEET_REDIS_URL"] = rd.url  # start_worker reads this very dict
    worker = start_worker()
    symbols = ["RA/USDT", "RB/USDT", "RC/USDT"]
    keys = [analysis_key(namespace, "volatility", "binance", s) for s in symbols]
    tickers_topic = MARKET_TICKERS.named(namespace)
    memcached = MultiTierCache.from_urls(f"memcached://{memcached_addr}", invalidation_channel=None)

    def processed() -> float:
        return worker.counter("warmfleet_agent_events_processed_total", topic=tickers_topic)

    async def in_memcached() -> list[int]:
        hits = [await memcached.get(k) for k in keys]
        return [0 if h is None else int(h.value["observations"]) for h in hits]

    private = aioredis.from_url(rd.url)
    try:
        await feed_rounds(producer, namespace, symbols, range(20))
        await all_at(private, keys, 20, timeout_s=30)
    finally:
        await private.aclose()
    before = await asyncio.to_thread(processed)

    # -- Redis stops; tickers keep coming ------------------------------------------------
    rd.stop()
    await feed_rounds(producer, namespace, symbols, range(20, 40))

    async def memcached_has_new_values() -> bool:
        return await in_memcached() == [40] * len(symbols)

    await eventually(memcached_has_new_values, timeout_s=30)

    async def processed_rising() -> bool:
        # 20 rounds x 3 symbols, each tenth round's duplicate included
        return await asyncio.to_thread(processed) >= before + 20 * 3 + 2 * 3

    await eventually(processed_rising, timeout_s=30)
    assert worker.proc.poll() is None

    # -- Redis returns (empty, same port): newer values reach it again -------------------
    rd.start()
    await feed_rounds(producer, namespace, symbols, range(40, 100))
    private = aioredis.from_url(rd.url)
    try:
        await all_at(private, keys, 100, timeout_s=30)
        for key in keys:
            env = await cached(private, key)
            assert env is not None and env["a"] == T0 + 99
    finally:
        await private.aclose()
        await memcached.close()
    assert worker.proc.poll() is None  # no crash, no exit code: it ran through the outage


# ---- 4. a Faust-era changelog -------------------------------------------------------------


async def test_tables_recover_from_a_faust_era_changelog(
    start_worker: Any, producer: AIOKafkaProducer, namespace: str,
    redis_client: aioredis.Redis, kafka_bootstrap: str,
) -> None:  # fmt: skip
    symbol = "OLD/USDT"
    table_key = symbol_key("binance", symbol).encode()
    partition = source_partition(table_key)
    old = TickerState(
        exchange="binance", symbol=symbol, last=100.0, as_of_ms=T0 + 1000, variance=0.0004,
        momentum=0.001, last_return=0.01, breakout=False, returns=40, observations=41,
        vwap=99.5, spread_bps=2.0, change_pct=1.5, quote_volume=1000.0,
    )  # fmt: skip
    await ensure_topics(kafka_bootstrap, namespace, CHANGELOGS)
    changelog = TICKS_CHANGELOG.named(namespace)
    # as the Faust tables wrote it: the key a JSON string, the source partition in the value
    await producer.send_and_wait(
        changelog, orjson.dumps({**old.to_dict(), "partition": partition}),
        key=b'"' + table_key + b'"', partition=partition,
    )  # fmt: skip
    worker = start_worker()
    newer = TickerView("binance", symbol, 101.0, None, None, None, None, None, None, T0 + 2000)
    await send_ticker(producer, namespace, "binance", symbol,
                      ticker("binance", symbol, newer.last, newer.as_of_ms))  # fmt: skip
    await producer.flush()
    key = analysis_key(namespace, "volatility", "binance", symbol)
    expected = observe_ticker(old, newer)

    async def counted() -> dict[str, Any] | None:
        env = await cached(redis_client, key)
        return env if env is not None and env["v"]["observations"] == 42 else None

    env = await eventually(counted, timeout_s=30)
    assert env["a"] == T0 + 2000
    assert env["v"] == symbol_analysis(expected, None, computed_ms=env["v"]["computed_ms"])
    recovered = worker.log_events("tables_recovered")
    assert sum(r["records"] for r in recovered) == 1

    # an older ticker is skipped: no count, no regression
    await send_ticker(producer, namespace, "binance", symbol,
                      ticker("binance", symbol, 50.0, T0 + 500))  # fmt: skip
    await producer.flush()
    tickers_topic = MARKET_TICKERS.named(namespace)

    async def skipped() -> bool:
        return await asyncio.to_thread(
            worker.counter, "warmfleet_agent_stale_skipped_total", topic=tickers_topic
        ) == 1  # fmt: skip

    await eventually(skipped, timeout_s=30)
    env = await cached(redis_client, key)
    assert env is not None
    assert (env["v"]["observations"], env["v"]["last"], env["a"]) == (42, 101.0, T0 + 2000)

    # the worker's own record for the key: unquoted, same partition, counted on
    def has_own(records: list[Any]) -> bool:
        return any(r.key == table_key for r in records)

    records = await read_topic(kafka_bootstrap, changelog, has_own)
    own = [r for r in records if r.key == table_key]
    assert [r.partition for r in own] == [partition]
    fields = orjson.loads(own[0].value)
    assert fields.pop("partition") == partition
    assert TickerState.from_dict(fields) == expected


# ---- 5. graceful shutdown under load ----------------------------------------------------


@pytest.mark.slow
async def test_sigterm_under_load_exits_cleanly_and_a_second_worker_finishes_exactly(
    start_worker: Any, producer: AIOKafkaProducer, namespace: str, redis_client: aioredis.Redis
) -> None:
    symbols = [f"L{i:03d}/USDT" for i in range(500)]
    keys = [analysis_key(namespace, "volatility", "binance", s) for s in symbols]
    tickers_topic = MARKET_TICKERS.named(namespace)
    preload, total = 40, 60  # 20,000 tickers before the worker starts, 10,000 while it runs
    started = time.monotonic()
    await feed_rounds(producer, namespace, symbols, range(preload), pause_s=0.0)
    first = start_worker()

    async def first_consuming() -> bool:
        # the backlog's first batch is in the worker: handled, its records on their way
        return await asyncio.to_thread(
            first.counter, "warmfleet_agent_events_total", topic=tickers_topic
        ) > 0  # fmt: skip

    await eventually(first_consuming, timeout_s=30, every_s=0.01)
    sent: list[int] = []
    feeding = asyncio.create_task(
        feed_rounds(producer, namespace, symbols, range(preload, total), 0.15, sent.append)
    )
    try:
        code = await asyncio.to_thread(first.stop, signal.SIGTERM, 30)  # raises after 30 s
        assert code == 0, f"exit code {code}"
        second = start_worker()
    finally:
        await feeding
    await all_at(redis_client, keys, total, timeout_s=max(15.0, 55 - (time.monotonic() - started)))
    assert first.log_events("symbol_stream_stopped")
    for bad in ("symbol_stream_stop_timeout", "batch_not_delivered", "batch_failed"):
        assert not first.log_events(bad) and not second.log_events(bad), bad
    raw = await redis_client.mget(keys)
    assert {orjson.loads(r)["a"] for r in raw} == {T0 + total - 1}
