"""The freshness contract over HTTP, on the real servers: ``stale`` in every answer, ``Age``,
``Cache-Control`` with the stale window, request ``Cache-Control: max-age / max-stale``, and
stale-if-error while an exchange's breaker is published open (``topics.origin``)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from readers import OriginWatch, create_app, running_reader
from readers._freshness import ANY_STALE, CACHE_CONTROL_PATTERN, request_directives, stricter
from readers._routes import BadRequest
from tests.readers._helpers import get, now_ms, reader_cache, short_policy
from tiers import MultiTierCache
from topics import key_for
from topics.origin import encode_state, origin_key

pytestmark = pytest.mark.integration

TICKER = {"exchange": "binance", "symbol": "BTC/USDT", "last": 64_000.5}


@pytest_asyncio.fixture(loop_scope="function")
async def cache(stack_urls: Any) -> AsyncIterator[MultiTierCache]:
    cache = reader_cache(stack_urls, short_policy())
    yield cache
    await cache.close()


@pytest_asyncio.fixture(loop_scope="function")
async def origins(stack_urls: Any, prefix: str) -> AsyncIterator[OriginWatch]:
    watch = OriginWatch(stack_urls.redis_url, prefix, refresh_s=0.05)
    yield watch
    await watch.close()


@pytest_asyncio.fixture(loop_scope="function")
async def base(cache: MultiTierCache, prefix: str, origins: OriginWatch) -> AsyncIterator[str]:
    async with running_reader(create_app(cache, key_prefix=prefix, origins=origins)) as url:
        yield url


async def cached_ticker(
    cache: MultiTierCache, prefix: str, exchange: str, symbol: str, age_ms: int = 0
) -> tuple[str, str]:
    """TICKER written for ``exchange``/``symbol``, ``age_ms`` old: (its key, its route)."""
    key = key_for("tickers", exchange, symbol, prefix=prefix)
    await cache.set(key, TICKER, data_type="tickers", as_of=now_ms() - age_ms)
    return key, f"/v2/tickers/{exchange}/{symbol.replace('/', '-')}"


def directive(headers: Any, name: str) -> int:
    for part in headers["Cache-Control"].split(","):
        key, _, value = part.strip().partition("=")
        if key == name:
            return int(value)
    raise AssertionError(f"no {name} in {headers['Cache-Control']!r}")


# ---- request directives (pure) ----------------------------------------------------------


def test_request_directives_are_read_as_rfc_9111_says() -> None:
    assert request_directives([]) == (None, None)
    assert request_directives(["max-age=30"]) == (30.0, None)
    assert request_directives(["no-cache, MAX-AGE=5 , max-stale"]) == (5.0, ANY_STALE)
    assert request_directives(["max-stale=600", 'max-age="7"']) == (7.0, 600.0)
    # a browser's reload: revalidate; the reader is where caches revalidate
    assert request_directives(["max-age=0"]) == (None, None)
    # the first of a directive given twice counts (RFC 9111 4.2.1)
    assert request_directives(["max-age=3, max-age=90"]) == (3.0, None)
    # a delta-seconds too large to hold is "a very long time", not an error
    assert request_directives(["max-age=" + "9" * 5000])[0] == 31_536_000
    assert stricter(None, 5) == 5 and stricter(5, None) == 5 and stricter(30, 5) == 5


@pytest.mark.parametrize(
    "value", ["max-age=abc", "max-age", "max-age=-1", "max-age=1.5", "max-stale=soon", "max-age="]
)
def test_a_malformed_directive_says_what_to_send(value: str) -> None:
    with pytest.raises(BadRequest, match="max-age=30"):
        request_directives([value])


# ---- over HTTP ----------------------------------------------------------------------------


async def test_every_answer_carries_stale_age_and_the_stale_window(
    cache: MultiTierCache, base: str, prefix: str
) -> None:
    key, route = await cached_ticker(cache, prefix, "binance", "BTC/USDT", age_ms=3_000)
    for path in (route, f"/v2/keys/{key}"):
        status, body, headers = await get(base, path)
        assert status == 200 and body["stale"] is False and body["tier"] == "memory"
        assert 3 <= int(headers["Age"]) <= 10 and int(headers["Age"]) == body["age_ms"] // 1000
        # the stale window of the cache's policy (120 s here), for the caches in front
        assert directive(headers, "max-age") == 15
        assert directive(headers, "stale-while-revalidate") == 120
        assert directive(headers, "stale-if-error") == 120


async def test_max_stale_over_http_serves_a_copy_past_its_fresh_ttl_flagged(
    cache: MultiTierCache, base: str, prefix: str
) -> None:
    _, path = await cached_ticker(cache, prefix, "okx", "ETH/USDT")
    assert (await get(base, path))[1]["stale"] is False
    await asyncio.sleep(2.2)  # past the fresh TTL of every tier
    status, body, _ = await get(base, path)
    assert status == 404 and body["error"] == "not_found"
    status, body, headers = await get(base, path, **{"Cache-Control": "max-stale=60"})
    assert status == 200 and body["stale"] is True and body["tier"] == "redis"
    assert int(headers["Age"]) >= 2 and body["value"] == TICKER
    assert (await get(base, path, **{"Cache-Control": "max-stale"}))[1]["stale"] is True
    # less staleness than the copy has is refused
    assert (await get(base, path, **{"Cache-Control": "max-stale=0"}))[0] == 404
    # max-age with max-stale: the data's age still counts; the stricter of the two max-ages
    refused = await get(base, path, **{"Cache-Control": "max-age=1, max-stale=60"})
    assert refused[0] == 404 and refused[1]["error"] == "stale" and refused[1]["age_ms"] >= 2000
    strict_query = await get(
        base, path + "?max_age=1", **{"Cache-Control": "max-age=99, max-stale"}
    )
    assert strict_query[0] == 404 and strict_query[1]["error"] == "stale"
    strict_header = await get(
        base, path + "?max_age=99", **{"Cache-Control": "max-age=1, max-stale"}
    )
    assert strict_header[0] == 404 and strict_header[1]["error"] == "stale"
    both_loose = await get(base, path + "?max_age=99", **{"Cache-Control": "max-age=99,max-stale"})
    assert both_loose[0] == 200 and both_loose[1]["stale"] is True


async def test_a_malformed_cache_control_is_a_400_saying_what_to_send(
    cache: MultiTierCache, base: str, prefix: str
) -> None:
    _, path = await cached_ticker(cache, prefix, "binance", "SOL/USDT")
    assert (await get(base, path))[0] == 200  # remembered: the next requests take the hot path
    status, body, _ = await get(base, path, **{"Cache-Control": "max-age=soon"})
    assert status == 400 and body["error"] == "bad_request"
    assert "Cache-Control" in body["detail"] and "max-age=30" in body["detail"]
    ok = await get(base, path, **{"Cache-Control": "max-age=0"})  # a browser's reload
    assert ok[0] == 200 and ok[1]["stale"] is False


async def test_while_an_exchange_is_failing_its_keys_are_served_stale_and_others_not(
    stack_urls: Any, cache: MultiTierCache, base: str, prefix: str, origins: OriginWatch
) -> None:
    binance, _ = await cached_ticker(cache, prefix, "binance", "ADA/USDT")
    await cached_ticker(cache, prefix, "okx", "ADA/USDT")
    for path in ("/v2/tickers/binance/ADA-USDT", "/v2/tickers/okx/ADA-USDT"):
        assert (await get(base, path))[1]["stale"] is False  # both remembered, hot
    await asyncio.sleep(2.2)  # both past their fresh TTL
    redis = aioredis.from_url(stack_urls.redis_url)
    hash_key = origin_key(prefix)
    try:
        await redis.hset(hash_key, "binance", encode_state("open", now_ms(), now_ms() + 30_000, 5))
        for _ in range(100):
            if "binance" in await origins.refresh():
                break
        status, body, headers = await get(base, "/v2/tickers/binance/ADA-USDT")
        assert status == 200 and body["stale"] is True and body["value"] == TICKER
        assert int(headers["Age"]) >= 2
        # OKX is not failing: its past-fresh copy is not served
        assert (await get(base, "/v2/tickers/okx/ADA-USDT"))[0] == 404
        # a published state past its until_ms no longer counts
        await redis.hset(hash_key, "binance", encode_state("open", now_ms(), now_ms() - 1, 5))
        assert "binance" not in await origins.refresh()
        assert (await get(base, "/v2/tickers/binance/ADA-USDT"))[0] == 404
        # failing again, then recovered: the field goes, a fresh write is served fresh
        await redis.hset(hash_key, "binance", encode_state("open", now_ms(), now_ms() + 30_000, 5))
        await origins.refresh()
        assert (await get(base, "/v2/tickers/binance/ADA-USDT"))[1]["stale"] is True
        await redis.hdel(hash_key, "binance")
        await cache.set(binance, {**TICKER, "last": 1.0}, data_type="tickers", as_of=now_ms())
        await origins.refresh()
        status, body, _ = await get(base, "/v2/tickers/binance/ADA-USDT")
        assert status == 200 and body["stale"] is False and body["value"]["last"] == 1.0
    finally:
        await redis.delete(hash_key)
        await redis.aclose()


_PIECES = st.sampled_from(
    ["max-age", "MAX-Stale", "max-stale", "=", "5", '"7"', '"', ",", " ", "\t", "x", "0", "-1"]
)


# a header value never holds CR or LF (HTTP/1.1 field values)
_TEXT = st.text(st.characters(blacklist_characters="\r\n"), max_size=20)


@given(st.lists(_PIECES, max_size=12).map("".join) | _TEXT)
def test_the_openapi_pattern_refuses_exactly_what_the_reader_refuses(value: str) -> None:
    try:
        request_directives([value])
        accepted = True
    except BadRequest:
        accepted = False
    assert accepted == bool(re.search(CACHE_CONTROL_PATTERN, value)), value
