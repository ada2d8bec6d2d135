"""Each fault kind, as the real ccxt sees it: the exception it raises against the real
exchange (reference/ccxt-binance.md; OKX from ccxt's okx.py), or the garbage it returns."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import ccxt
import pytest

from sim import RunningSimulator, make_fault, running_simulator
from tests.sim.conftest import SteppedClock
from workers.pollers import PollerConfig, client_options

EXPECTED: list[tuple[str, str, type[Exception]]] = [
    ("binance", "429", ccxt.DDoSProtection),
    ("binance", "418", ccxt.DDoSProtection),
    ("binance", "500", ccxt.ExchangeNotAvailable),
    ("binance", "503", ccxt.ExchangeNotAvailable),
    ("binance", "timeout", ccxt.RequestTimeout),
    ("okx", "429", ccxt.RateLimitExceeded),  # OKX's 429 body carries code 50011
    ("okx", "418", ccxt.DDoSProtection),
    ("okx", "500", ccxt.ExchangeNotAvailable),
    ("okx", "503", ccxt.ExchangeNotAvailable),
    ("okx", "timeout", ccxt.RequestTimeout),
]


def inject(sim: RunningSimulator, endpoint: str, kind: str, **extra: Any) -> None:
    spec = {"endpoint": endpoint, "kind": kind, "count": 1, **extra}
    sim.simulator.faults.add(make_fault(spec), sim.simulator.now_ms())


@pytest.mark.parametrize(("venue", "kind", "error"), EXPECTED)
async def test_fault_raises_the_ccxt_exception_of_the_real_exchange(
    venue: str,
    kind: str,
    error: type[Exception],
    sim: RunningSimulator,
    ccxt_client: Callable[..., Any],
) -> None:
    client = ccxt_client(venue, timeout_ms=500)
    await client.load_markets()
    inject(sim, venue, kind, retry_after_s=7)
    with pytest.raises(error) as caught:
        await client.fetch_tickers(["BTC/USDT"])
    assert type(caught.value) is error
    if kind in ("429", "418"):
        assert client.last_response_headers.get("Retry-After") == "7"
    # the fault was one-shot: the next request is answered normally
    assert "BTC/USDT" in await client.fetch_tickers(["BTC/USDT"])


@pytest.mark.parametrize("venue", ["binance", "okx"])
@pytest.mark.parametrize("kind", ["truncated", "empty"])
async def test_garbage_bodies_raise_nothing_useful_and_parse_into_none(
    venue: str, kind: str, sim: RunningSimulator, ccxt_client: Callable[..., Any]
) -> None:
    """The reason pollers validate: ccxt returns rows of None and empty books, no error."""
    client = ccxt_client(venue)
    await client.load_markets()
    inject(sim, venue, kind)
    candles = await client.fetch_ohlcv("BTC/USDT", "1m", limit=3)
    assert candles == [] or all(None in row for row in candles)
    inject(sim, venue, kind)
    book = await client.fetch_order_book("BTC/USDT", 5)
    assert book["bids"] == [] and book["asks"] == []


async def test_slow_answers_within_the_timeout_and_times_out_beyond_it(
    sim: RunningSimulator, ccxt_client: Callable[..., Any]
) -> None:
    client = ccxt_client("okx", timeout_ms=1_000)
    await client.load_markets()
    inject(sim, "/api/v5/market/books", "slow", delay_s=0.05)
    assert (await client.fetch_order_book("BTC/USDT", 5))["bids"]
    inject(sim, "/api/v5/market/books", "slow", delay_s=3.0)
    with pytest.raises(ccxt.RequestTimeout):
        await client.fetch_order_book("BTC/USDT", 5)


async def test_stale_freezes_prices_and_timestamps_while_time_runs() -> None:
    clock = SteppedClock()
    async with running_simulator(seed=3, symbols=5, clock=clock) as sim:
        config = PollerConfig(rate_limit_ms=1)
        client = ccxt.async_support.okx(client_options("okx", sim.url, config))
        try:
            await client.load_markets()
            stale = make_fault({"endpoint": "okx", "kind": "stale"})
            sim.simulator.faults.add(stale, sim.simulator.now_ms())
            first = await client.fetch_ticker("BTC/USDT")
            clock.advance(600)
            second = await client.fetch_ticker("BTC/USDT")
            assert (second["last"], second["timestamp"]) == (first["last"], first["timestamp"])
            sim.simulator.faults.clear()
            moved = await client.fetch_ticker("BTC/USDT")
            assert moved["timestamp"] == first["timestamp"] + 600_000
            assert moved["last"] != first["last"]
        finally:
            await client.close()


async def test_timeout_fault_holds_the_request_until_the_client_leaves(
    sim: RunningSimulator, ccxt_client: Callable[..., Any]
) -> None:
    client = ccxt_client("binance", timeout_ms=300)
    await client.load_markets()
    inject(sim, "binance", "timeout")
    with pytest.raises(ccxt.RequestTimeout):
        await client.fetch_ticker("BTC/USDT")
    await asyncio.sleep(0.2)  # the held handler notices the closed connection and ends
    assert sim.simulator.faults.list() == []
