"""The real ccxt library against the simulator, every endpoint, both venues."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ccxt
import pytest
import pytest_asyncio

from sim import RunningSimulator
from tests.sim.conftest import SYMBOLS, VENUES


def requests(sim: RunningSimulator) -> int:
    return sim.simulator.total_requests


@pytest.fixture(params=VENUES)
def venue(request: pytest.FixtureRequest) -> str:
    """Every test here runs once per venue the simulator serves."""
    return str(request.param)


@pytest.fixture
def client(venue: str, ccxt_client: Callable[..., Any]) -> Any:
    """A real ccxt client for ``venue``, pointed at the simulator; markets not loaded."""
    return ccxt_client(venue)


@pytest_asyncio.fixture(loop_scope="function")
async def loaded(client: Any) -> Any:
    """``client`` with its markets loaded (one request)."""
    await client.load_markets()
    return client


async def test_load_markets_is_one_request_with_precision_limits_and_status(
    venue: str, sim: RunningSimulator, client: Any
) -> None:
    markets = await client.load_markets()
    assert requests(sim) == 1
    assert len(markets) == SYMBOLS + 1
    btc = markets["BTC/USDT"]
    assert btc["spot"] and btc["active"]
    assert (btc["base"], btc["quote"]) == ("BTC", "USDT")
    assert btc["precision"]["price"] == 0.01
    assert btc["precision"]["amount"] == 0.00001
    assert btc["limits"]["amount"]["min"] == 0.00001
    assert markets["ETH/BTC"]["id"] == ("ETHBTC" if venue == "binance" else "ETH-BTC")
    assert markets["FTT/USDT"]["active"] is False


async def test_tickers_bulk_is_one_request_and_consistent(
    sim: RunningSimulator, loaded: Any
) -> None:
    client = loaded
    before = requests(sim)
    some = await client.fetch_tickers(["BTC/USDT", "ETH/USDT", "ETH/BTC"])
    assert requests(sim) == before + 1
    assert set(some) == {"BTC/USDT", "ETH/USDT", "ETH/BTC"}
    everything = await client.fetch_tickers()
    assert requests(sim) == before + 2
    assert len(everything) == SYMBOLS + 1
    for ticker in some.values():
        assert ticker["bid"] < ticker["last"] < ticker["ask"]
        assert ticker["low"] <= ticker["last"] <= ticker["high"]
        assert ticker["baseVolume"] > 0 and ticker["quoteVolume"] > 0
        assert ticker["timestamp"] == pytest.approx(sim.simulator.now_ms(), abs=5_000)
        assert ticker["percentage"] == pytest.approx(
            100 * (ticker["last"] - ticker["open"]) / ticker["open"], abs=0.01
        )
    one = await client.fetch_ticker("ETH/BTC")
    assert one["symbol"] == "ETH/BTC"
    assert one["last"] == pytest.approx(some["ETH/BTC"]["last"], rel=0.05)


async def test_ohlcv_candles_end_with_the_current_price(loaded: Any) -> None:
    client = loaded
    candles = await client.fetch_ohlcv("BTC/USDT", "1m", limit=30)
    assert len(candles) == 30
    assert [c[0] for c in candles] == sorted(c[0] for c in candles)
    assert all(c[0] % 60_000 == 0 for c in candles)
    for _, o, h, low, c, v in candles:
        assert low <= min(o, c) <= max(o, c) <= h and v > 0
    ticker = await client.fetch_ticker("BTC/USDT")
    assert candles[-1][4] == pytest.approx(ticker["last"], rel=0.01)
    since = candles[5][0]
    window = await client.fetch_ohlcv("BTC/USDT", "1m", since=since, limit=3)
    assert [c[0] for c in window] == [since, since + 60_000, since + 120_000]
    hourly = await client.fetch_ohlcv("BTC/USDT", "1h", limit=5)
    assert len(hourly) == 5 and all(c[0] % 3_600_000 == 0 for c in hourly)


async def test_order_book_top_n(venue: str, loaded: Any) -> None:
    book = await loaded.fetch_order_book("ETH/USDT", 10)
    assert len(book["bids"]) == 10 and len(book["asks"]) == 10
    assert book["bids"][0][0] < book["asks"][0][0]
    assert [b[0] for b in book["bids"]] == sorted((b[0] for b in book["bids"]), reverse=True)
    assert [a[0] for a in book["asks"]] == sorted(a[0] for a in book["asks"])
    if venue == "okx":
        assert book["timestamp"] is not None
    else:  # Binance's /depth has lastUpdateId and no timestamp
        assert book["nonce"] is not None and book["timestamp"] is None


async def test_server_time_and_unknown_symbol_in_the_venue_error_shape(
    venue: str, sim: RunningSimulator, client: Any
) -> None:
    assert await client.fetch_time() == pytest.approx(sim.simulator.now_ms(), abs=5_000)
    with pytest.raises(ccxt.BadSymbol):  # the server says so: ccxt maps the venue's code
        if venue == "binance":
            await client.publicGetTicker24hr({"symbol": "NOPEUSDT"})
        else:
            await client.publicGetMarketTicker({"instId": "NOPE-USDT"})
