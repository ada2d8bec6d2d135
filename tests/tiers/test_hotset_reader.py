"""Reads through the real HTTP reader (granian, in this loop) reach the hot set: both the
reader's hot path (a known key, no query) and its general path count every read."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from readers import create_app, running_reader
from tiers import HeatRecorder, HeatView, MultiTierCache
from topics import key_for

pytestmark = [pytest.mark.integration, pytest.mark.redis]


async def test_every_http_read_is_counted_once_in_the_fleets_hot_set(
    stack_urls: Any, prefix: str
) -> None:
    cache = MultiTierCache.from_urls("memory://?max_entries=100", stack_urls.redis_url)
    heat = HeatRecorder(stack_urls.redis_url, prefix=prefix)
    warm = key_for("tickers", "binance", "BTC/USDT", prefix=prefix)
    cold = key_for("tickers", "okx", "SOL/USDT", prefix=prefix)
    await cache.set(warm, {"last": 1.0}, data_type="tickers", as_of=int(time.time() * 1000))
    app = create_app(cache, key_prefix=prefix, on_read=heat.touch)
    try:
        async with running_reader(app) as base, aiohttp.ClientSession() as session:
            for _ in range(10):  # after the first, the memoised hot path answers
                async with session.get(f"{base}/v2/tickers/binance/BTC-USDT") as resp:
                    assert resp.status == 200
            for _ in range(3):
                async with session.get(f"{base}/v2/tickers/okx/SOL-USDT?max_age=5") as resp:
                    assert resp.status == 404
            async with session.get(f"{base}/healthz") as resp:
                assert resp.status == 200  # not a cache read: not counted
    finally:
        await heat.close()  # sends what is left
        await cache.close()
    view = HeatView(stack_urls.redis_url, prefix=prefix)
    try:
        assert await view.refresh()
        assert view.heat(warm) == pytest.approx(10, rel=0.05)
        assert view.heat(cold) == pytest.approx(3, rel=0.05)
        assert view.size == 2
    finally:
        await view.close()


async def test_the_reader_process_builds_its_counter_from_settings(
    monkeypatch: pytest.MonkeyPatch, stack_urls: Any, prefix: str
) -> None:
    from workers.cli._reader import worker_app

    monkeypatch.setenv("WARMFLEET_KEY_PREFIX", prefix)
    monkeypatch.setenv("WARMFLEET_REDIS_URL", stack_urls.redis_url)
    app = worker_app()
    counter = app.on_read.__self__  # type: ignore[attr-defined]
    assert isinstance(counter, HeatRecorder) and counter.prefix == prefix
    await app.on_close()  # type: ignore[attr-defined,misc]


async def test_candle_reads_of_any_timeframe_make_their_symbol_hot_for_the_clock(
    stack_urls: Any, prefix: str
) -> None:
    from topics import DataType

    cache = MultiTierCache.from_urls("memory://?max_entries=100")
    heat = HeatRecorder(stack_urls.redis_url, prefix=prefix)
    try:
        async with (
            running_reader(create_app(cache, key_prefix=prefix, on_read=heat.touch)) as base,
            aiohttp.ClientSession() as session,
        ):
            for frame in ("1m", "5m", "1m"):
                url = f"{base}/v2/candles/binance/ETH-USDT?timeframe={frame}&limit=5"
                async with session.get(url) as resp:
                    assert resp.status == 404  # cold: still a read, counted
    finally:
        await heat.close()
        await cache.close()
    view = HeatView(stack_urls.redis_url, prefix=prefix)
    try:
        assert await view.refresh() and view.size == 2  # one key per timeframe
        assert view.hot_symbols("binance", DataType.CANDLES, 10) == ["ETH/USDT"]
        one_minute = key_for("candles", "binance", "ETH/USDT", "1m", prefix=prefix)
        assert view.heat(one_minute) == pytest.approx(2, rel=0.05)
    finally:
        await view.close()
