"""The reader's hot path (``ReaderApp.__rsgi__`` on a path it has resolved before) answers
exactly what the full dispatch answers: the same body, ETag / 304, Cache-Control directives
honoured, the 431 limit, and the same metrics. The first request of a path takes the full
dispatch, every later one the hot path, so each case here asks twice or more.

Real granian, real Memcached and Redis below the reader's L1."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio

from readers import ReaderLimits, ServerOptions, create_app, running_reader
from readers._metrics import AGE_BUCKETS, STATS
from readers._server import free_port
from tiers import MultiTierCache
from topics import key_for

pytestmark = pytest.mark.integration

ROUTE = "/v2/tickers/{exchange}/{symbol}"


@pytest_asyncio.fixture(loop_scope="function")
async def base(cache: MultiTierCache, prefix: str) -> AsyncIterator[str]:
    now = int(time.time() * 1000)
    for sym in ("BTC/USDT", "ETH/USDT"):
        value = {"exchange": "binance", "symbol": sym, "last": 1.5}
        key = key_for("tickers", "binance", sym, prefix=prefix)
        await cache.set(key, value, data_type="tickers", as_of=now - 2_000)
    limits = ReaderLimits(max_header_bytes=2048)
    app = create_app(cache, key_prefix=prefix, limits=limits)
    async with running_reader(app, ServerOptions(port=free_port(), limits=limits)) as url:
        yield url


async def _get(base: str, path: str, **headers: str) -> tuple[int, Any, bytes]:
    async with aiohttp.ClientSession() as session:
        async with session.get(base + path, headers=headers) as resp:
            return resp.status, resp.headers.copy(), await resp.read()  # case-insensitive


async def test_the_hot_path_answers_what_the_full_dispatch_answered(base: str) -> None:
    path = "/v2/tickers/binance/BTC-USDT"
    first = await _get(base, path)  # resolves the path: the full dispatch
    again = [await _get(base, path) for _ in range(3)]  # the hot path
    assert first[0] == 200 and all(status == 200 for status, _, _ in again)
    want = orjson.loads(first[2])
    for _, headers, body in again:
        got = orjson.loads(body)
        assert {k: v for k, v in got.items() if k != "age_ms"} == {
            k: v for k, v in want.items() if k != "age_ms"
        }
        assert got["age_ms"] >= 2_000 and got["tier"] == "memory" and got["stale"] is False
        for name in ("ETag", "Cache-Control", "Content-Type"):
            assert headers[name] == first[1][name]
        assert int(headers["Age"]) >= 2


async def test_if_none_match_is_a_304_on_the_hot_path(base: str) -> None:
    path = "/v2/tickers/binance/ETH-USDT"
    status, headers, _ = await _get(base, path)
    assert status == 200
    tag = headers["ETag"]
    for _ in range(2):
        status, headers, body = await _get(base, path, **{"If-None-Match": tag})
        assert status == 304 and body == b"" and headers["ETag"] == tag
    status, _, body = await _get(base, path, **{"If-None-Match": '"0"'})  # another version
    assert status == 200 and body


async def test_a_request_cache_control_leaves_the_hot_path(base: str) -> None:
    path = "/v2/tickers/binance/BTC-USDT"
    assert (await _get(base, path))[0] == 200
    assert (await _get(base, path))[0] == 200
    # the copy is ~2 s old: a client that accepts 1 s gets the reader's "stale" 404
    status, _, body = await _get(base, path, **{"Cache-Control": "max-age=1"})
    assert status == 404 and orjson.loads(body)["error"] == "stale"
    assert (await _get(base, path, **{"Cache-Control": "max-age=60"}))[0] == 200


async def test_oversized_headers_are_a_431_on_the_hot_path(base: str) -> None:
    path = "/v2/tickers/binance/BTC-USDT"
    assert (await _get(base, path))[0] == 200
    status, _, body = await _get(base, path, **{"X-Padding": "p" * 3000})
    assert status == 431 and orjson.loads(body)["error"] == "headers_too_large"
    assert (await _get(base, path, **{"X-Small": "p" * 100}))[0] == 200


async def test_the_hot_path_counts_requests_and_served_ages(base: str) -> None:
    path = "/v2/tickers/binance/ETH-USDT"
    assert (await _get(base, path))[0] == 200
    before = STATS.requests().get((ROUTE, 200), 0)
    ages_before = list(STATS.ages["tickers"])
    latency_before = STATS.latency()[ROUTE][:-1]
    for _ in range(4):
        assert (await _get(base, path))[0] == 200
    assert STATS.requests()[(ROUTE, 200)] == before + 4
    assert sum(STATS.latency()[ROUTE][:-1]) == sum(latency_before) + 4
    grown = [
        i
        for i, (a, b) in enumerate(zip(ages_before[:-1], STATS.ages["tickers"][:-1], strict=True))
        if b > a
    ]
    assert sum(STATS.ages["tickers"][:-1]) == sum(ages_before[:-1]) + 4
    # the copy is ~2 s old: counted at or above the 1 s bound, never in a sub-second bucket
    assert grown and min(AGE_BUCKETS[i] if i < len(AGE_BUCKETS) else 1e9 for i in grown) >= 1
    assert STATS.ages["tickers"][-1] >= ages_before[-1] + 4 * 1.9  # the sum of seconds
