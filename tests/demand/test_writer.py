"""``MarketWriter`` (demand/_writer.py), the agents' stand-in of the demand tests and the
demand benchmark, on real Kafka, Memcached and Redis: it writes ticker and book records
under the agents' keys, and a record it cannot decode is counted and skipped, never a
stopped writer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from demand._writer import MarketWriter, ticker_document
from tests.conftest import StackURLs
from tiers import MultiTierCache
from topics import MARKET_BOOKS, MARKET_TICKERS, DataType, key_for, symbol_key
from topics.kafka import ensure_topics
from workers.agents import InvalidEvent, decode_book

pytestmark = pytest.mark.integration


def book_document(key: bytes | None, raw: bytes | None) -> tuple[dict[str, Any], int]:
    _, document, as_of = decode_book(key, raw, now_ms=int(time.time() * 1000))
    return document, as_of


async def test_the_writer_writes_tickers_and_books_and_skips_what_it_cannot_decode(
    stack_urls: StackURLs, namespace: str
) -> None:
    prefix = namespace.rstrip(".")
    await ensure_topics(stack_urls.kafka_bootstrap, namespace)
    cache = MultiTierCache.from_urls(stack_urls.memcached_url, stack_urls.redis_url)
    writer = MarketWriter(
        stack_urls.kafka_bootstrap, namespace, cache,
        {DataType.TICKERS: ticker_document, DataType.BOOKS: book_document},
        skip=(InvalidEvent,),
    )  # fmt: skip
    t = int(time.time() * 1000) - 1_000
    ticker = {"exchange": "binance", "symbol": "BTC/USDT", "last": 100.0, "as_of_ms": t}
    book = {
        "exchange": "binance", "symbol": "ETH/USDT", "bids": [[10.0, 1.0]],
        "asks": [[10.5, 2.0]], "as_of_ms": t, "received_ms": t,
    }  # fmt: skip
    crossed = {**book, "symbol": "SOL/USDT", "bids": [[11.0, 1.0]]}  # bid > ask: refused
    producer = AIOKafkaProducer(bootstrap_servers=stack_urls.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for topic, symbol, body in (
            (MARKET_TICKERS, "X/Y", b"{not json"),  # undecodable, before a good one
            (MARKET_TICKERS, "BTC/USDT", orjson.dumps(ticker)),
            (MARKET_BOOKS, "SOL/USDT", orjson.dumps(crossed)),
            (MARKET_BOOKS, "ETH/USDT", orjson.dumps(book)),
        ):
            await producer.send_and_wait(topic.named(namespace), body, partition=0,
                                         key=symbol_key("binance", symbol).encode())  # fmt: skip
    finally:
        await producer.stop()
    stop = asyncio.Event()
    task = asyncio.create_task(writer.run(stop))
    try:
        for _ in range(200):
            if writer.written + writer.skipped >= 4 or task.done():
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task  # ended by ``stop``, not by a bad record
    try:
        assert (writer.written, writer.skipped) == (2, 2)
        got = await cache.get(key_for("tickers", "binance", "BTC/USDT", prefix=prefix))
        assert got is not None and got.value == ticker and got.as_of == t
        got = await cache.get(key_for("books", "binance", "ETH/USDT", prefix=prefix))
        assert got is not None and got.as_of == t
        assert got.value == {
            "exchange": "binance", "symbol": "ETH/USDT", "bids": [[10.0, 1.0]],
            "asks": [[10.5, 2.0]], "best_bid": 10.0, "best_ask": 10.5, "depth": 1,
        }  # fmt: skip
        assert await cache.get(key_for("books", "binance", "SOL/USDT", prefix=prefix)) is None
    finally:
        await cache.close()


def test_the_writer_refuses_a_data_type_without_a_market_topic() -> None:
    cache = MultiTierCache.from_urls("memory://")
    with pytest.raises(ValueError, match="no market topic"):
        MarketWriter("127.0.0.1:9092", "t.", cache, {DataType.OVERVIEW: ticker_document})
