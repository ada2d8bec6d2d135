"""The market model on its own: deterministic, consistent, and with two volatility regimes."""

from __future__ import annotations

import math
import statistics

import pytest

from sim import MarketModel, default_pairs
from sim._market import DAY_MINUTES, MINUTE_MS, TICK_MS

ORIGIN = 1_700_000_000_000


def test_default_market_has_the_majors_and_at_least_fifty_trading_pairs() -> None:
    pairs = default_pairs()
    trading = [p.symbol for p in pairs if p.trading]
    assert len(trading) >= 50
    assert {"BTC/USDT", "ETH/USDT", "ETH/BTC"} <= set(trading)
    assert len(set(trading)) == len(trading)
    assert [p.symbol for p in pairs if not p.trading] == ["FTT/USDT"]
    assert len([p for p in default_pairs(500) if p.trading]) == 500


def test_same_seed_and_time_give_identical_prices_whatever_the_order_of_questions() -> None:
    a = MarketModel(42, default_pairs(50), ORIGIN)
    b = MarketModel(42, default_pairs(50), ORIGIN)
    later = ORIGIN + 3 * 3600 * 1000 + 12_345
    # b is asked about the later time first, and about symbols in another order
    for symbol in reversed([p.symbol for p in b.pairs]):
        b.price(symbol, later)
    for symbol in ("BTC/USDT", "ETH/BTC", "PEPE/USDT"):
        for t in (ORIGIN, ORIGIN + 61_000, later):
            assert a.price(symbol, t) == b.price(symbol, t)
            assert a.candles(symbol, t, 1, 30) == b.candles(symbol, t, 1, 30)
            assert a.book(symbol, t, 10) == b.book(symbol, t, 10)
            assert a.day_stats(symbol, t) == b.day_stats(symbol, t)
    other = MarketModel(43, default_pairs(50), ORIGIN)
    assert other.price("BTC/USDT", later) != a.price("BTC/USDT", later)


def test_candles_and_day_stats_agree_with_the_price_path() -> None:
    model = MarketModel(7, default_pairs(5), ORIGIN)
    now = ORIGIN + 95_000  # 35 s into a minute: the last candle is still forming
    candles = model.candles("BTC/USDT", now, 1, DAY_MINUTES)
    assert candles[-1].open_ms == now // MINUTE_MS * MINUTE_MS
    assert candles[-1].close == model.price("BTC/USDT", now)
    for c in candles:
        assert c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high
        assert c.volume > 0
    assert [c.open_ms for c in candles] == sorted({c.open_ms for c in candles})
    day = model.day_stats("BTC/USDT", now)
    window = [c for c in candles if c.open_ms > now - DAY_MINUTES * MINUTE_MS]
    assert day.last == model.price("BTC/USDT", now)
    assert day.high == max(max(c.high for c in window), day.open)
    assert day.low == min(min(c.low for c in window), day.open)
    assert day.open == model.price("BTC/USDT", now - DAY_MINUTES * MINUTE_MS)
    # 5-minute candles are the 1-minute candles aggregated
    five = model.candles("BTC/USDT", now, 5, 3)
    ones = [c for c in candles if c.open_ms >= five[0].open_ms]
    assert five[0].high == max(c.high for c in ones if c.open_ms < five[0].open_ms + 5 * MINUTE_MS)
    assert five[-1].close == candles[-1].close


def test_the_book_brackets_the_price_and_is_sorted() -> None:
    model = MarketModel(7, default_pairs(5), ORIGIN)
    for symbol in ("BTC/USDT", "ETH/BTC"):
        book = model.book(symbol, ORIGIN, 50)
        price = model.price(symbol, ORIGIN)
        assert book.bids[0][0] < price < book.asks[0][0]
        assert [p for p, _ in book.bids] == sorted((p for p, _ in book.bids), reverse=True)
        assert [p for p, _ in book.asks] == sorted(p for p, _ in book.asks)
        assert all(q > 0 for _, q in book.bids + book.asks)
        assert len(book.asks) == 50


def test_prices_move_tick_by_tick_and_only_then() -> None:
    model = MarketModel(7, default_pairs(3), ORIGIN)
    start = ORIGIN // TICK_MS * TICK_MS
    assert model.price("ETH/USDT", start) == model.price("ETH/USDT", start + TICK_MS - 1)
    assert model.price("ETH/USDT", start) != model.price("ETH/USDT", start + TICK_MS)


def test_volatile_regime_moves_prices_more_than_calm() -> None:
    model = MarketModel(7, default_pairs(10), ORIGIN)
    minutes = range(ORIGIN // MINUTE_MS - DAY_MINUTES + 1, ORIGIN // MINUTE_MS)
    regimes = {m: model.regime(m * MINUTE_MS) for m in minutes}
    assert set(regimes.values()) == {"calm", "volatile"}
    returns: dict[str, list[float]] = {"calm": [], "volatile": []}
    for pair in model.pairs[:10]:
        candles = {c.open_ms // MINUTE_MS: c for c in model.candles(pair.symbol, ORIGIN, 1, 1000)}
        for minute, c in candles.items():
            if minute in regimes:
                returns[regimes[minute]].append(abs(math.log(c.close / c.open)))
    assert statistics.median(returns["volatile"]) > 2 * statistics.median(returns["calm"])


def test_unknown_symbol_is_a_key_error_naming_it() -> None:
    model = MarketModel(7, default_pairs(3), ORIGIN)
    with pytest.raises(KeyError, match="NOPE/USDT"):
        model.price("NOPE/USDT", ORIGIN)
