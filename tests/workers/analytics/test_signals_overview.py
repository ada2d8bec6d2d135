from __future__ import annotations

import pytest

from workers.analytics import (
    CandleState,
    OverviewRow,
    TickerState,
    market_overview,
    overviews,
    quote_of,
    signals,
    symbol_analysis,
)


def ticks(**kw: object) -> TickerState:
    fields: dict[str, object] = {
        "exchange": "binance", "symbol": "BTC/USDT", "last": 100.0, "as_of_ms": 10,
        "variance": 0.0001, "momentum": 0.0, "last_return": 0.0, "breakout": False,
        "returns": 20, "observations": 21, "vwap": None, "spread_bps": None,
        "change_pct": None, "quote_volume": None,
    }  # fmt: skip
    fields.update(kw)
    return TickerState(**fields)  # type: ignore[arg-type]


def candles(**kw: object) -> CandleState:
    fields: dict[str, object] = {
        "exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1m", "close": 100.0,
        "rsi": 50.0, "ema_fast": 1.0, "ema_slow": 1.0, "atr": 1.0, "rows": 50,
        "as_of_ms": 20, "observations": 1,
    }  # fmt: skip
    fields.update(kw)
    return CandleState(**fields)  # type: ignore[arg-type]


def test_momentum_signal_against_volatility() -> None:
    # volatility = sqrt(1e-4) = 0.01; threshold 0.5 * 0.01 = 0.005
    assert signals(ticks(momentum=0.006), None) == ["momentum_up"]
    assert signals(ticks(momentum=-0.006), None) == ["momentum_down"]
    assert signals(ticks(momentum=0.004), None) == []
    assert signals(ticks(momentum=0.006, returns=3), None) == []  # not warmed up


def test_rsi_ema_and_breakout_signals() -> None:
    assert signals(None, candles(rsi=75.0)) == ["rsi_overbought"]
    assert signals(None, candles(rsi=30.0)) == ["rsi_oversold"]
    assert signals(None, candles(ema_fast=2.0)) == ["ema_bullish"]
    assert signals(None, candles(ema_slow=2.0)) == ["ema_bearish"]
    assert signals(ticks(breakout=True), candles(rsi=None, ema_fast=None)) == [
        "volatility_breakout"
    ]


def test_symbol_analysis_combines_both_states() -> None:
    out = symbol_analysis(ticks(momentum=0.006), candles(rsi=80.0), computed_ms=99)
    assert out["volatility"] == pytest.approx(0.01)
    assert out["rsi"] == 80.0 and out["observations"] == 21 and out["as_of_ms"] == 20
    assert out["signals"] == ["momentum_up", "rsi_overbought"]
    only_candles = symbol_analysis(None, candles(close=7.0), computed_ms=1)
    assert only_candles["last"] == 7.0 and only_candles["volatility"] == 0.0
    with pytest.raises(ValueError):
        symbol_analysis(None, None, computed_ms=1)


def row(
    exchange: str,
    symbol: str,
    change: float | None,
    qv: float | None,
    spread: float | None,
    vol: float,
    returns: int = 5,
    as_of: int = 1,
) -> OverviewRow:
    return OverviewRow(exchange, symbol, 1.0, change, qv, spread, vol, returns, as_of)


KNOWN = [
    row("binance", "BTC/USDT", 5.0, 1000.0, 1.0, 0.02, as_of=50),
    row("binance", "ETH/USDT", -2.0, 500.0, 3.0, 0.04),
    row("binance", "ETH/BTC", 1.0, 7.0, 2.0, 0.01),  # BTC-quoted: not in the USD volume
    row("okx", "BTC/USDT", 0.0, 300.0, None, 0.03, as_of=70),
    row("okx", "SOL/USDC", -4.0, None, 5.0, 0.05),
    row("okx", "NEW/USDT", None, 10.0, 4.0, 0.0, returns=0),  # no change, no return yet
]


def test_overview_exactly_right_for_a_known_input() -> None:
    every = overviews(KNOWN, computed_ms=123, top_n=2)
    assert set(every) == {"binance", "okx", "all"}
    assert every["all"] == {
        "scope": "all",
        "symbols": 6,
        "advancers": 2,
        "decliners": 2,
        "unchanged": 2,
        "top_gainers": [
            {"exchange": "binance", "symbol": "BTC/USDT", "change_pct": 5.0, "last": 1.0},
            {"exchange": "binance", "symbol": "ETH/BTC", "change_pct": 1.0, "last": 1.0},
        ],
        "top_losers": [
            {"exchange": "okx", "symbol": "SOL/USDC", "change_pct": -4.0, "last": 1.0},
            {"exchange": "binance", "symbol": "ETH/USDT", "change_pct": -2.0, "last": 1.0},
        ],
        "total_quote_volume": 1810.0,  # 1000 + 500 + 300 + 10
        "median_spread_bps": 3.0,  # median of 1, 3, 2, 5, 4
        "volatility_index": pytest.approx(0.03),  # median of .02 .04 .01 .03 .05
        "as_of_ms": 70,
        "computed_ms": 123,
    }
    okx = every["okx"]
    assert (okx["symbols"], okx["advancers"], okx["decliners"], okx["unchanged"]) == (3, 0, 1, 2)
    assert okx["total_quote_volume"] == 310.0 and okx["median_spread_bps"] == 4.5
    assert okx["volatility_index"] == pytest.approx(0.04)
    assert every["binance"]["median_spread_bps"] == 2.0


def test_overview_of_nothing() -> None:
    empty = market_overview("all", [], computed_ms=1)
    assert empty["symbols"] == 0 and empty["median_spread_bps"] is None
    assert empty["volatility_index"] == 0.0 and empty["top_gainers"] == []


def test_quote_of_spot_and_swap() -> None:
    assert quote_of("BTC/USDT") == "USDT" and quote_of("BTC/USDT:USDT") == "USDT"
