"""The reader's routes, status codes and headers against a warm cache on the real servers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from readers import create_app
from tests._servers import PrivateServer
from tiers import MultiTierCache
from topics import key_for

pytestmark = pytest.mark.integration

TICKER = {"exchange": "binance", "symbol": "BTC/USDT", "last": 64_000.5, "bid": 64_000.0}


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def prefix(namespace: str) -> str:
    return namespace.rstrip(".")


@pytest_asyncio.fixture(loop_scope="function")
async def cache(stack_urls: Any, prefix: str) -> AsyncIterator[MultiTierCache]:
    cache = MultiTierCache.from_urls(
        "memory://?max_entries=1000", stack_urls.memcached_url, stack_urls.redis_url
    )
    yield cache
    await cache.close()


async def _client(cache: MultiTierCache, prefix: str) -> TestClient[Any, Any]:
    client = TestClient(TestServer(create_app(cache, key_prefix=prefix)))
    await client.start_server()
    return client


@pytest_asyncio.fixture(loop_scope="function")
async def client(cache: MultiTierCache, prefix: str) -> AsyncIterator[TestClient[Any, Any]]:
    client = await _client(cache, prefix)
    yield client
    await client.close()


async def test_ticker_is_served_warm_with_headers(
    cache: MultiTierCache, client: TestClient[Any, Any], prefix: str
) -> None:
    as_of = now_ms() - 2_000
    key = key_for("tickers", "binance", "BTC/USDT", prefix=prefix)
    await cache.set(key, TICKER, data_type="tickers", as_of=as_of)

    resp = await client.get("/v2/tickers/binance/BTC-USDT")
    assert resp.status == 200
    body = await resp.json()
    assert body["key"] == key and body["value"] == TICKER
    assert body["as_of"] == as_of and body["tier"] == "memory"
    assert 1_500 <= body["age_ms"] <= 60_000
    assert resp.headers["Content-Type"].startswith("application/json")
    max_age = int(resp.headers["Cache-Control"].split("max-age=")[1])
    assert 0 <= max_age <= 15
    etag = resp.headers["ETag"]

    # the slash spelling reaches the same key; a matching ETag is a 304
    same = await client.get("/v2/tickers/binance/BTC/USDT", headers={"If-None-Match": etag})
    assert same.status == 304 and same.headers["ETag"] == etag

    # a newer value changes the ETag
    await cache.set(key, {**TICKER, "last": 64_001.0}, data_type="tickers", as_of=as_of + 1)
    changed = await client.get("/v2/tickers/binance/BTC-USDT", headers={"If-None-Match": etag})
    assert changed.status == 200 and changed.headers["ETag"] != etag


async def test_cold_and_unknown_are_404_with_a_clear_body(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/v2/tickers/binance/DOGE-USDT")
    assert resp.status == 404
    body = await resp.json()
    assert body["error"] == "not_found" and "cold or unknown" in body["detail"]
    nowhere = await client.get("/v3/whatever")
    assert nowhere.status == 404 and (await nowhere.json())["error"] == "not_found"


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("/v2/tickers/binance/BTCUSDT", "BASE/QUOTE"),
        ("/v2/tickers/Bin%20ance/BTC-USDT", "exchange"),
        ("/v2/tickers/binance/BTC-USDT?max_age=-3", "max_age"),
        ("/v2/tickers/binance/BTC-USDT?max_age=soon", "max_age"),
        ("/v2/overview/not%20an%20exchange", "exchange"),
        ("/v2/keys/has%20space", "whitespace"),
    ],
)
async def test_client_mistakes_are_400_never_500(
    client: TestClient[Any, Any], path: str, needle: str
) -> None:
    resp = await client.get(path)
    assert resp.status == 400
    body = await resp.json()
    assert body["error"] == "bad_request" and needle in body["detail"]


async def test_max_age_refuses_older_data(
    cache: MultiTierCache, client: TestClient[Any, Any], prefix: str
) -> None:
    key = key_for("overview", "all", prefix=prefix)
    await cache.set(
        key, {"scope": "all", "symbols": 3}, data_type="overview", as_of=now_ms() - 60_000
    )
    stale = await client.get("/v2/overview?max_age=10")
    assert stale.status == 404
    body = await stale.json()
    assert body["error"] == "stale" and body["age_ms"] >= 59_000
    fresh_enough = await client.get("/v2/overview?max_age=120")
    assert fresh_enough.status == 200
    assert (await fresh_enough.json())["value"] == {"scope": "all", "symbols": 3}


async def test_analysis_carries_signals_and_overview_per_exchange(
    cache: MultiTierCache, client: TestClient[Any, Any], prefix: str
) -> None:
    as_of = now_ms()
    analysis = {"symbol": "ETH/BTC", "volatility": 0.012, "rsi": 71.0}
    await cache.set(
        key_for("volatility", "okx", "ETH/BTC", prefix=prefix),
        analysis,
        data_type="volatility",
        as_of=as_of,
    )
    await cache.set(
        key_for("signals", "okx", "ETH/BTC", prefix=prefix),
        ["rsi_overbought"],
        data_type="signals",
        as_of=as_of,
    )
    await cache.set(
        key_for("overview", "okx", prefix=prefix),
        {"scope": "okx"},
        data_type="overview",
        as_of=as_of,
    )
    resp = await client.get("/v2/analysis/okx/eth-btc")
    assert resp.status == 200
    body = await resp.json()
    assert body["value"] == analysis and body["signals"] == ["rsi_overbought"]
    per_exchange = await client.get("/v2/overview/okx")
    assert (await per_exchange.json())["value"] == {"scope": "okx"}
    raw = await client.get(f"/v2/keys/{key_for('overview', 'okx', prefix=prefix)}")
    assert raw.status == 200 and (await raw.json())["value"] == {"scope": "okx"}


async def test_a_tier_down_and_the_reader_still_answers(
    stack_urls: Any, prefix: str, private_server: Callable[[str], PrivateServer]
) -> None:
    memcached = private_server("memcached")
    writer = MultiTierCache.from_urls("memory://", memcached.url, stack_urls.redis_url)
    key = key_for("tickers", "okx", "SOL/USDT", prefix=prefix)
    await writer.set(key, TICKER, data_type="tickers", as_of=now_ms())
    await writer.close()

    # another process: its own empty L1, the same L2 and L3 — and then L2 dies
    reader_cache = MultiTierCache.from_urls("memory://", memcached.url, stack_urls.redis_url)
    client = await _client(reader_cache, prefix)
    try:
        memcached.stop()
        for _ in range(5):  # before and after the breaker opens
            resp = await client.get("/v2/tickers/okx/SOL-USDT")
            assert resp.status == 200
        body = await resp.json()
        assert body["value"] == TICKER and body["tier"] in ("redis", "memory")
    finally:
        await client.close()
        await reader_cache.close()


async def test_metrics_health_and_openapi(client: TestClient[Any, Any]) -> None:
    await client.get("/v2/overview")
    metrics = await client.get("/metrics")
    text = await metrics.text()
    assert metrics.status == 200 and "warmfleet_reader_requests_total" in text
    assert "warmfleet_cache_hits_total" in text
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    spec = await (await client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    assert {"/v2/tickers/{exchange}/{symbol}", "/v2/overview", "/v2/keys/{key}"} <= set(
        spec["paths"]
    )
