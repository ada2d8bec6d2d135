"""``/v2/books`` and ``/v2/candles`` on the real servers: values written through
``MultiTierCache`` under the agents' contract (keys ``topics.key_for("books", ex, sym)`` and
``key_for("candles", ex, sym, timeframe)``), served in the usual envelope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from readers import create_app, running_reader
from tests.readers._helpers import get, now_ms
from tiers import MultiTierCache
from topics import key_for

pytestmark = pytest.mark.integration

BOOK = {
    "exchange": "binance",
    "symbol": "BTC/USDT",
    "bids": [[64_000.0, 1.5], [63_999.5, 2.0]],
    "asks": [[64_000.5, 0.7], [64_001.0, 3.1]],
    "best_bid": 64_000.0,
    "best_ask": 64_000.5,
    "depth": 2,
}


def candles(n: int, timeframe: str = "1m") -> dict[str, Any]:
    step = 60_000
    rows = [
        [1_700_000_000_000 + i * step, 1.0 + i, 2.0 + i, 0.5 + i, 1.5 + i, 10.0] for i in range(n)
    ]
    return {"exchange": "okx", "symbol": "ETH/USDT", "timeframe": timeframe, "rows": rows}


@pytest_asyncio.fixture(loop_scope="function")
async def base(cache: MultiTierCache, prefix: str) -> AsyncIterator[str]:
    async with running_reader(create_app(cache, key_prefix=prefix)) as url:
        yield url


async def test_a_book_is_served_in_the_envelope_with_its_headers(
    cache: MultiTierCache, base: str, prefix: str
) -> None:
    key = key_for("books", "binance", "BTC/USDT", prefix=prefix)
    as_of = now_ms() - 1_000
    await cache.set(key, BOOK, data_type="books", as_of=as_of)
    for path in ("/v2/books/binance/BTC-USDT", "/v2/books/Binance/btc_usdt"):  # twice: hot path
        for _ in range(2):
            status, body, headers = await get(base, path)
            assert status == 200 and body["value"] == BOOK and body["key"] == key
            assert body["as_of"] == as_of and body["stale"] is False
            assert body["tier"] in ("memory", "memcached", "redis")
            assert headers["ETag"] == f'"{as_of:x}"' and int(headers["Age"]) >= 1
            assert "max-age=15," in headers["Cache-Control"]  # the books class: 15 s
    etag = headers["ETag"]
    async with aiohttp.ClientSession() as session:
        async with session.get(
            base + "/v2/books/binance/BTC-USDT", headers={"If-None-Match": etag}
        ) as resp:
            assert resp.status == 304 and resp.headers["ETag"] == etag


async def test_candles_answer_the_last_limit_rows_of_the_timeframe(
    cache: MultiTierCache, base: str, prefix: str
) -> None:
    as_of = now_ms()
    one_minute, one_hour = candles(500), candles(30, "1h")
    await cache.set(
        key_for("candles", "okx", "ETH/USDT", "1m", prefix=prefix), one_minute,
        data_type="candles", as_of=as_of,
    )  # fmt: skip
    await cache.set(
        key_for("candles", "okx", "ETH/USDT", "1h", prefix=prefix), one_hour,
        data_type="candles", as_of=as_of,
    )  # fmt: skip
    status, body, headers = await get(base, "/v2/candles/okx/ETH-USDT")
    assert status == 200 and body["stale"] is False
    value = body["value"]
    assert value["timeframe"] == "1m" and len(value["rows"]) == 100  # the default limit
    assert value["rows"] == one_minute["rows"][-100:]  # the latest, oldest first
    assert "max-age=60," in headers["Cache-Control"]  # the candles class: 1 m
    status, body, _ = await get(base, "/v2/candles/okx/ETH-USDT?timeframe=1m&limit=3")
    assert body["value"]["rows"] == one_minute["rows"][-3:]
    status, body, _ = await get(base, "/v2/candles/okx/ETH-USDT?limit=500")
    assert body["value"]["rows"] == one_minute["rows"]
    status, body, _ = await get(base, "/v2/candles/okx/ETH-USDT?timeframe=1h&limit=50")
    assert status == 200 and body["value"]["rows"] == one_hour["rows"]  # fewer than asked
    assert body["key"].endswith(":okx:ETH/USDT:1h")
    # a timeframe nobody warmed is cold
    status, body, _ = await get(base, "/v2/candles/okx/ETH-USDT?timeframe=4h")
    assert status == 404 and body["error"] == "not_found"


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("timeframe=1x", "timeframe"),
        ("timeframe=1000m", "timeframe"),
        ("timeframe=", "timeframe"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("limit=-1", "limit"),
        ("limit=1&limit=2", "limit"),
    ],
)
async def test_a_bad_timeframe_or_limit_is_a_400(base: str, query: str, needle: str) -> None:
    status, body, _ = await get(base, f"/v2/candles/okx/ETH-USDT?{query}")
    assert status == 400 and body["error"] == "bad_request" and needle in body["detail"]


async def test_cold_books_and_candles_are_404_and_bad_paths_400(base: str) -> None:
    for path in ("/v2/books/binance/DOGE-USDT", "/v2/candles/binance/DOGE-USDT?limit=5"):
        status, body, _ = await get(base, path)
        assert status == 404 and body["error"] == "not_found" and "cold" in body["detail"]
    for path in ("/v2/books/binance/DOGEUSDT", "/v2/candles/b%20x/BTC-USDT"):
        assert (await get(base, path))[0] == 400
    assert (await get(base, "/v2/books/binance"))[0] == 404  # no route
