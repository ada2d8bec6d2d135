"""Cold reads through the demand path, end to end on the real stack: the reader misses, one
demand job goes to warm.jobs, the poller fetches from the simulator through ccxt, the value
is written and the bus wakes the reader, which answers 200 within its deadline."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.demand.conftest import fleet, jobs_on, sim_requests

pytestmark = pytest.mark.integration


async def test_a_cold_ticker_read_answers_200_with_the_value(
    stack_urls: Any, namespace: str
) -> None:
    async with fleet(stack_urls, namespace) as f, aiohttp.ClientSession() as http:
        assert await f.reader_cache.get(f.ticker_key("ETH/USDT")) is None  # cold
        before = await sim_requests(f.sim, "ticker")
        async with http.get(f"{f.url}/v2/tickers/binance/ETH-USDT") as resp:
            body = await resp.json()
            assert resp.status == 200, body
        assert body["value"]["symbol"] == "ETH/USDT"
        assert body["value"]["last"] > 0
        assert body["key"] == f.ticker_key("ETH/USDT")
        assert await sim_requests(f.sim, "ticker") - before == 1
        jobs = [j for j in await jobs_on(stack_urls.kafka_bootstrap, namespace, 1.0)]
        assert [(j["priority"], j["symbols"], j["data_type"]) for j in jobs] == [
            ("demand", ["ETH/USDT"], "tickers")
        ]
        # warm now: the next read is a plain hit, no new job
        async with http.get(f"{f.url}/v2/tickers/binance/ETH-USDT") as resp:
            assert resp.status == 200
        assert await sim_requests(f.sim, "ticker") - before == 1


async def test_an_unlisted_symbol_is_a_404_and_no_job(stack_urls: Any, namespace: str) -> None:
    async with fleet(stack_urls, namespace) as f, aiohttp.ClientSession() as http:
        before = await sim_requests(f.sim, "/api/")
        for path in ("binance/NOPE-USDT", "binance/FTT-USDT", "kraken/BTC-USDT"):
            async with http.get(f"{f.url}/v2/tickers/{path}") as resp:
                body = await resp.json()
                assert resp.status == 404, (path, body)
                assert body["error"] == "not_found"
        assert await sim_requests(f.sim, "/api/") == before  # nothing asked of the exchange
        assert await jobs_on(stack_urls.kafka_bootstrap, namespace, 1.0) == []


async def test_cold_ticker_keys_asked_together_share_origin_requests(
    stack_urls: Any, namespace: str
) -> None:
    # budget 100/s: the readers admit one job per token (conservative: coalesced jobs cost less)
    async with (
        fleet(stack_urls, namespace, symbols=40, rate=100.0) as f,
        aiohttp.ClientSession() as http,
    ):
        symbols = sorted(await f.demand.demand.fleet.listed("binance"))[:30]
        before = await sim_requests(f.sim, "ticker")

        async def read(symbol: str) -> tuple[int, Any]:
            async with http.get(f"{f.url}/v2/tickers/binance/{symbol.replace('/', '-')}") as r:
                return r.status, await r.json()

        answers = await asyncio.gather(*(read(s) for s in symbols))
        assert [status for status, _ in answers] == [200] * 30
        assert [body["value"]["symbol"] for _, body in answers] == symbols
        jobs = await jobs_on(stack_urls.kafka_bootstrap, namespace, 1.0)
        assert len(jobs) == 30  # one demand job per key ...
        requests = await sim_requests(f.sim, "ticker") - before
        assert 1 <= requests < 30  # ... but the poller coalesced them into fewer requests
