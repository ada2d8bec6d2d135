"""`warmfleet status`'s read view against a real reader over the real servers: shares of
all reads by what answered them (L1, L2, L3, stale, missed) summing to 100 %, P95 beside
p50 and p99, the read error rate, and served age per data type — scraped from /metrics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from rich.console import Console

from readers import create_app, running_reader
from tests.readers._helpers import reader_cache, short_policy
from tiers import MultiTierCache
from topics import key_for
from workers.cli._status import read_shares, render, scrape, served_ages, summarise

pytestmark = pytest.mark.integration


async def test_read_shares_sum_to_100_percent_with_p95_and_served_age(
    stack_urls: Any, namespace: str
) -> None:
    prefix = namespace.rstrip(".")
    now = int(time.time() * 1000)
    writer = MultiTierCache.from_urls(
        stack_urls.memcached_url, stack_urls.redis_url, ttl_policy=short_policy(300.0)
    )
    cache = reader_cache(stack_urls, short_policy(300.0))
    stale_key = key_for("tickers", "okx", "SOL/USDT", prefix=prefix)
    try:
        await writer.set(stale_key, {"last": 1.0}, data_type="tickers", as_of=now)
        await asyncio.sleep(2.2)  # past its fresh TTL: only a max-stale read gets it
        for i in range(20):
            key = key_for("tickers", "binance", f"C{i}/USDT", prefix=prefix)
            await writer.set(key, {"last": i}, data_type="tickers", as_of=now - 3_000)
        book = key_for("books", "binance", "BTC/USDT", prefix=prefix)
        await writer.set(book, {"bids": [], "asks": []}, data_type="books", as_of=now - 5_000)
        async with running_reader(create_app(cache, key_prefix=prefix)) as base:
            url = f"{base}/metrics"
            before = await scrape({"reader": url})
            async with aiohttp.ClientSession() as session:

                async def get(path: str, **headers: str) -> int:
                    async with session.get(base + path, headers=headers) as resp:
                        return resp.status

                for i in range(20):
                    assert await get(f"/v2/tickers/binance/C{i}-USDT") == 200  # L2 (memcached)
                    assert await get(f"/v2/tickers/binance/C{i}-USDT") == 200  # L1
                assert await get("/v2/books/binance/BTC-USDT") == 200
                for i in range(5):
                    assert await get(f"/v2/tickers/binance/COLD{i}-USDT") == 404  # missed
                okx = "/v2/tickers/okx/SOL-USDT"
                assert await get(okx, **{"Cache-Control": "max-stale"}) == 200  # stale
            now_snap = await scrape({"reader": url})
        summary = summarise(now_snap, before)
        reads = summary["reads"]
        assert reads["window"] is True
        shares = reads["shares"]
        assert set(shares) == {"l1", "l2", "l3", "stale", "miss"}
        assert sum(shares.values()) == pytest.approx(1.0)  # every read ends in one outcome
        assert shares["l1"] > 0 and shares["l2"] > 0 and shares["stale"] > 0
        assert shares["miss"] > 0
        assert reads["reads"] == 20 + 20 + 1 + 5 + 1
        assert 0 <= reads["p50_ms"] <= reads["p95_ms"] <= reads["p99_ms"]
        assert reads["error_rate"] == 0.0
        ages = summary["served_age_s"]
        assert set(ages) == {"tickers", "books"}
        assert 2.5 <= ages["tickers"]["p50"] <= ages["tickers"]["p99"] <= 15
        assert 2.5 <= ages["books"]["p50"] <= 10
        # the same figures since start, without a window
        assert read_shares(now_snap.samples["reader"], None)["window"] is False
        assert served_ages(now_snap.samples["reader"], None)["books"]["p99"] is not None
        console = Console(width=160, record=True)
        console.print(render(summary))
        text = console.export_text()
        assert "P95" in text and "stale" in text and "served age per data type" in text
    finally:
        await writer.close()
        await cache.close()


def test_the_dashboard_shows_the_same_read_figures_as_status() -> None:
    import json
    from pathlib import Path

    path = Path(__file__).parents[2] / "deploy" / "grafana" / "dashboards" / "warmfleet.json"
    panels = {p["title"]: p for p in json.loads(path.read_text())["panels"]}
    exprs = {t: " ".join(x["expr"] for x in p.get("targets", [])) for t, p in panels.items()}
    shares = exprs["Read shares: L1 / L2 / L3 / stale / missed"]
    assert "sum by (outcome)" in shares and "warmfleet_cache_reads_total" in shares
    assert panels["Read shares: L1 / L2 / L3 / stale / missed"]["fieldConfig"]["defaults"][
        "unit"
    ] == ("percentunit")
    latency = exprs["Read latency p50 / P95 / p99"]
    assert all(f"histogram_quantile({q}," in latency for q in ("0.5", "0.95", "0.99"))
    assert "warmfleet_cache_read_errors_total" in exprs["Read error rate"]
    ages = exprs["Served age p50 / p99 per data type"]
    assert "warmfleet_reader_served_age_seconds_bucket" in ages and "data_type" in ages
    for title in ("Reader latency p50 / P95 / p99", "Tier latency p50 / P95 / p99"):
        assert "histogram_quantile(0.95," in exprs[title]
