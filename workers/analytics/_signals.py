"""Signals: a few documented, deliberately simple flags per symbol.

They describe what the numbers say; they are not advice and carry no edge by themselves.

=======================  ===========================================================
``momentum_up``          momentum (EWMA of log returns, span 10) > +0.5 x volatility,
``momentum_down``        or < -0.5 x volatility; needs 10 returns of history
``rsi_overbought``       candle RSI(14) >= 70
``rsi_oversold``         candle RSI(14) <= 30
``ema_bullish``          candle EMA(12) > EMA(26)
``ema_bearish``          candle EMA(12) < EMA(26)
``volatility_breakout``  the last log return exceeded 3 x the volatility before it
=======================  ===========================================================
"""

from __future__ import annotations

from workers.analytics._candles import CandleState
from workers.analytics._ticker import WARMUP_RETURNS, TickerState

MOMENTUM_RATIO = 0.5
RSI_OVERBOUGHT = 70.0
RSI_OVERSOLD = 30.0

SIGNALS: tuple[str, ...] = (
    "momentum_up",
    "momentum_down",
    "rsi_overbought",
    "rsi_oversold",
    "ema_bullish",
    "ema_bearish",
    "volatility_breakout",
)


def signals(ticks: TickerState | None, candles: CandleState | None) -> list[str]:
    """The flags that hold now, in the order of ``SIGNALS``."""
    out: list[str] = []
    if ticks is not None and ticks.returns >= WARMUP_RETURNS and ticks.variance > 0:
        vol = ticks.volatility
        if ticks.momentum > MOMENTUM_RATIO * vol:
            out.append("momentum_up")
        elif ticks.momentum < -MOMENTUM_RATIO * vol:
            out.append("momentum_down")
    if candles is not None and candles.rsi is not None:
        if candles.rsi >= RSI_OVERBOUGHT:
            out.append("rsi_overbought")
        elif candles.rsi <= RSI_OVERSOLD:
            out.append("rsi_oversold")
    if candles is not None and candles.ema_fast is not None and candles.ema_slow is not None:
        if candles.ema_fast > candles.ema_slow:
            out.append("ema_bullish")
        elif candles.ema_fast < candles.ema_slow:
            out.append("ema_bearish")
    if ticks is not None and ticks.breakout:
        out.append("volatility_breakout")
    return out
