"""XFetch early refresh: with no schedule at all (a 600 s interval), a key read steadily is
refreshed by its readers before it expires, so it never goes cold; a key nobody reads
expires. Short TTLs (``SHORT_TTLS``: fresh 3 s in Redis) make it run in seconds."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from demand import DemandConfig
from demand import _metrics as metrics
from tests.demand.conftest import SHORT_TTLS, fleet, sim_requests

pytestmark = pytest.mark.integration


def _count(counter: Any, outcome: str) -> float:
    return float(counter.labels("binance", "tickers", outcome)._value.get())


async def test_a_key_read_steadily_never_goes_cold_and_an_unread_key_expires(
    stack_urls: Any, namespace: str
) -> None:
    config = DemandConfig(lease_ms=2_000)
    async with (
        fleet(stack_urls, namespace, policy=SHORT_TTLS, config=config) as f,
        aiohttp.ClientSession() as http,
    ):
        hot, idle = "BTC/USDT", "ETH/USDT"
        for symbol in (hot, idle):  # both cold: loaded on demand once
            async with http.get(f"{f.url}/v2/tickers/binance/{symbol}") as resp:
                assert resp.status == 200
        first = await f.reader_cache.get(f.ticker_key(hot))
        assert first is not None
        asked, early = (
            _count(metrics.DEMAND_JOBS, "asked"),
            _count(metrics.EARLY_REFRESHES, "asked"),
        )
        deduplicated = _count(metrics.DEMAND_JOBS, "deduplicated")
        origin = await sim_requests(f.sim, "ticker")
        as_ofs: set[int] = set()
        statuses: list[int] = []
        misses = 0

        async def read_steadily(stop_at: float) -> None:  # one of four readers, 20 reads/s each
            nonlocal misses
            while time.monotonic() < stop_at:
                if await f.reader_cache.get(f.ticker_key(hot)) is None:
                    misses += 1  # the reader would have had nothing to answer from its tiers
                async with http.get(f"{f.url}/v2/tickers/binance/{hot}") as resp:
                    statuses.append(resp.status)
                    as_ofs.add((await resp.json())["as_of"])
                await asyncio.sleep(0.05)

        stop_at = time.monotonic() + 12.0  # 4 fresh TTLs of the hot key
        await asyncio.gather(*(read_steadily(stop_at) for _ in range(4)))
        refreshes = _count(metrics.EARLY_REFRESHES, "asked") - early
        cold_asks = _count(metrics.DEMAND_JOBS, "asked") - asked
        waits = _count(metrics.DEMAND_JOBS, "deduplicated") - deduplicated
        print(f"reads {len(statuses)} refreshes {refreshes} cold asks {cold_asks} "
              f"waits {waits} misses {misses} copies {len(as_ofs)} "
              f"origin {await sim_requests(f.sim, 'ticker') - origin} "
              f"delta {f.demand.demand.deltas.get('binance', 'tickers'):.3f}")  # fmt: skip
        assert statuses == [200] * len(statuses)
        assert refreshes >= 3  # refreshed about once per fresh TTL, by XFetch
        assert cold_asks == 0  # never cold: no read had to ask for a missing key
        assert len(as_ofs) >= 3
        # the idle key was read once, 12 s ago: its 3 s copy is gone, and nobody asked again
        assert await f.reader_cache.get(f.ticker_key(idle)) is None
