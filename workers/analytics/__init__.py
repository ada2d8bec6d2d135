"""Pure analytics: tickers -> volatility, momentum, VWAP, spread; candles -> RSI, EMA cross,
ATR; signals; the market overview. Time and state are parameters; nothing here does I/O."""

from __future__ import annotations

from workers.analytics._analysis import overview_row, symbol_analysis
from workers.analytics._candles import CandleState, atr, candle_state, ema, rsi, true_ranges
from workers.analytics._overview import (
    ALL,
    USD_QUOTES,
    OverviewRow,
    market_overview,
    overviews,
    quote_of,
)
from workers.analytics._signals import SIGNALS, signals
from workers.analytics._ticker import (
    BREAKOUT_SIGMAS,
    MOMENTUM_ALPHA,
    VOL_LAMBDA,
    WARMUP_RETURNS,
    TickerState,
    TickerView,
    change_pct,
    ewma,
    ewma_variance,
    log_return,
    observe_ticker,
    spread_bps,
    vwap,
)

__all__ = [
    "ALL",
    "BREAKOUT_SIGMAS",
    "MOMENTUM_ALPHA",
    "SIGNALS",
    "USD_QUOTES",
    "VOL_LAMBDA",
    "WARMUP_RETURNS",
    "CandleState",
    "OverviewRow",
    "TickerState",
    "TickerView",
    "atr",
    "candle_state",
    "change_pct",
    "ema",
    "ewma",
    "ewma_variance",
    "log_return",
    "market_overview",
    "observe_ticker",
    "overview_row",
    "overviews",
    "quote_of",
    "rsi",
    "signals",
    "spread_bps",
    "symbol_analysis",
    "true_ranges",
    "vwap",
]
