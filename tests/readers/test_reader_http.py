"""The reader's routes, status codes and headers against a warm cache on the real servers.

The reader runs on granian (embedded in the test's event loop, so it reads the test's own
cache) and is spoken to over real HTTP with aiohttp's client.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from readers import create_app, running_reader
from tests._servers import PrivateServer
from tiers import MultiTierCache
from topics import key_for

pytestmark = pytest.mark.integration

TICKER = {"exchange": "binance", "symbol": "BTC/USDT", "last": 64_000.5, "bid": 64_000.0}


def now_ms() -> int:
    return int(time.time() * 1000)


def directive(resp: Any, name: str) -> int:
    """A response Cache-Control directive's value (``max-age``, ``stale-if-error`` ...)."""
    for part in resp.headers["Cache-Control"].split(","):
        key, _, value = part.strip().partition("=")
        if key == name:
            return int(value)
    raise AssertionError(f"no {name} in {resp.headers['Cache-Control']!r}")


@pytest_asyncio.fixture(loop_scope="function")
async def cache(stack_urls: Any, prefix: str) -> AsyncIterator[MultiTierCache]:
    cache = MultiTierCache.from_urls(
        "memory://?max_entries=1000", stack_urls.memcached_url, stack_urls.redis_url
    )
    yield cache
    await cache.close()


class Client:
    """An aiohttp session bound to the reader's base URL (paths sent as given)."""

    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base, self.session = base, session

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def request(self, method: str, path: str, **kw: Any) -> Any:
        from yarl import URL

        return self.session.request(method, URL(self.base + path, encoded=True), **kw)


@pytest_asyncio.fixture(loop_scope="function")
async def client(cache: MultiTierCache, prefix: str) -> AsyncIterator[Client]:
    async with running_reader(create_app(cache, key_prefix=prefix)) as base:
        async with aiohttp.ClientSession() as session:
            yield Client(base, session)


async def test_ticker_is_served_warm_with_headers(
    cache: MultiTierCache, client: Client, prefix: str
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
    # max-age is the freshness class; Age says how much of it is used (RFC 9111 4.2.3)
    assert directive(resp, "max-age") == 15
    assert 1 <= int(resp.headers["Age"]) <= 60 and body["stale"] is False
    etag = resp.headers["ETag"]

    # the slash spelling reaches the same key; a matching ETag is a 304
    same = await client.get("/v2/tickers/binance/BTC/USDT", headers={"If-None-Match": etag})
    assert same.status == 304 and same.headers["ETag"] == etag

    # a newer value changes the ETag
    await cache.set(key, {**TICKER, "last": 64_001.0}, data_type="tickers", as_of=as_of + 1)
    changed = await client.get("/v2/tickers/binance/BTC-USDT", headers={"If-None-Match": etag})
    assert changed.status == 200 and changed.headers["ETag"] != etag


async def test_cold_and_unknown_are_404_with_a_clear_body(client: Client) -> None:
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
async def test_client_mistakes_are_400_never_500(client: Client, path: str, needle: str) -> None:
    resp = await client.get(path)
    assert resp.status == 400
    body = await resp.json()
    assert body["error"] == "bad_request" and needle in body["detail"]


async def test_max_age_refuses_older_data(
    cache: MultiTierCache, client: Client, prefix: str
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
    cache: MultiTierCache, client: Client, prefix: str
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
    try:
        async with running_reader(create_app(reader_cache, key_prefix=prefix)) as base:
            async with aiohttp.ClientSession() as session:
                client = Client(base, session)
                memcached.stop()
                for _ in range(5):  # before and after the breaker opens
                    resp = await client.get("/v2/tickers/okx/SOL-USDT")
                    assert resp.status == 200
                body = await resp.json()
        assert body["value"] == TICKER and body["tier"] in ("redis", "memory")
    finally:
        await reader_cache.close()


async def test_metrics_health_and_openapi(client: Client) -> None:
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


async def test_a_huge_max_age_is_a_400_not_a_500(client: Client) -> None:
    # on an L1 miss the cache computed int(max_age * 1000): OverflowError, a 500
    for raw in ("1e308", "31536001", "1e400", "nan"):
        resp = await client.get(f"/v2/overview?max_age={raw}")
        assert resp.status == 400, raw
        body = await resp.json()
        assert body["error"] == "bad_request" and "max_age" in body["detail"]
    twice = await client.get("/v2/overview?max_age=5&max_age=1e308")
    assert twice.status == 400 and "once" in (await twice.json())["detail"]


async def test_symbols_and_exchanges_are_matched_ascii_only(
    cache: MultiTierCache, client: Client, prefix: str
) -> None:
    key = key_for("tickers", "binance", "INJ/USDT", prefix=prefix)
    await cache.set(key, TICKER, data_type="tickers", as_of=now_ms())
    assert (await client.get("/v2/tickers/binance/INJ-USDT")).status == 200
    # str.upper() folded the dotless i (U+0131) into I: this reached INJ/USDT
    dotless = await client.get("/v2/tickers/binance/%C4%B1NJ-USDT")
    assert dotless.status == 400 and "BASE/QUOTE" in (await dotless.json())["detail"]
    # and str.lower() folds the Kelvin sign (U+212A) into k
    kelvin = await client.get("/v2/tickers/%E2%84%AAraken/INJ-USDT")
    assert kelvin.status == 400 and "exchange" in (await kelvin.json())["detail"]


async def test_wrong_methods_are_405_with_allow_and_json(client: Client) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        resp = await client.request(method, "/v2/tickers/binance/BTC-USDT", data=b"{}")
        assert resp.status == 405, method
        assert resp.headers["Allow"] == "GET, HEAD"
        assert (await resp.json())["error"] == "method_not_allowed"
    nowhere = await client.request("POST", "/v3/whatever")
    assert nowhere.status == 404 and (await nowhere.json())["error"] == "not_found"


async def test_oversized_requests_are_refused_with_a_json_body(client: Client) -> None:
    long_url = await client.get("/v2/tickers/binance/" + "A" * 9000 + "-USDT")
    assert long_url.status == 414
    assert long_url.headers["Content-Type"].startswith("application/json")
    assert (await long_url.json())["error"] == "uri_too_long"
    big_header = await client.get("/v2/overview", headers={"X-Padding": "x" * 20_000})
    assert big_header.status == 431
    assert (await big_header.json())["error"] == "headers_too_large"
    many = {f"X-H{i}": "y" * 200 for i in range(90)}  # 18 KB over many headers
    assert (await client.get("/v2/overview", headers=many)).status == 431
    # the connection is still good for a normal request
    assert (await client.get("/healthz")).status == 200


async def test_head_answers_the_headers_without_a_body(
    cache: MultiTierCache, client: Client, prefix: str
) -> None:
    key = key_for("tickers", "binance", "ETH/USDT", prefix=prefix)
    await cache.set(key, TICKER, data_type="tickers", as_of=now_ms())
    head = await client.request("HEAD", "/v2/tickers/binance/ETH-USDT")
    assert head.status == 200 and head.headers["ETag"]
    assert await head.read() == b""
    get = await client.get("/v2/tickers/binance/ETH-USDT")
    assert get.headers["ETag"] == head.headers["ETag"]


async def test_a_future_as_of_never_buys_a_longer_max_age(
    cache: MultiTierCache, client: Client, prefix: str
) -> None:
    key = key_for("tickers", "okx", "ADA/USDT", prefix=prefix)
    await cache.set(key, TICKER, data_type="tickers", as_of=now_ms() + 3_600_000)
    resp = await client.get("/v2/tickers/okx/ADA-USDT")
    if resp.status == 200:  # the tiers may refuse a future as_of outright: then nothing to cap
        assert directive(resp, "max-age") <= 15 and resp.headers["Age"] == "0"


async def test_the_warm_answer_is_re_encoded_when_the_value_changes(
    cache: MultiTierCache, client: Client, prefix: str
) -> None:
    key = key_for("tickers", "binance", "XRP/USDT", prefix=prefix)
    as_of = now_ms()
    await cache.set(key, TICKER, data_type="tickers", as_of=as_of)
    first = await (await client.get("/v2/tickers/binance/XRP-USDT")).json()
    again = await (await client.get("/v2/tickers/binance/XRP-USDT")).json()
    assert first["value"] == again["value"] == TICKER and again["age_ms"] >= first["age_ms"]
    newer = {**TICKER, "last": 1.5}
    await cache.set(key, newer, data_type="tickers", as_of=as_of + 5)
    after = await (await client.get("/v2/tickers/binance/XRP-USDT")).json()
    assert after["value"] == newer and after["as_of"] == as_of + 5
