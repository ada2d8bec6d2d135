"""Per-symbol analytics from OHLCV candles: RSI, EMA cross, ATR.

Every ``Candles`` event carries a window of rows ``[open_ms, open, high, low, close,
volume]`` (oldest first), so the indicators are pure functions of that window: replaying
an event gives the same numbers, and no history has to be kept between events.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from workers.analytics._table import TableValue

RSI_PERIOD = 14
ATR_PERIOD = 14
EMA_FAST = 12
EMA_SLOW = 26


@dataclass(frozen=True, slots=True)
class CandleState(TableValue):
    """The latest candle indicators of a symbol (a table value)."""

    exchange: str
    symbol: str
    timeframe: str
    close: float
    rsi: float | None
    ema_fast: float | None
    ema_slow: float | None
    atr: float | None
    rows: int
    as_of_ms: int
    observations: int


def ema(values: Sequence[float], span: int) -> float | None:
    """Exponential moving average (alpha = 2 / (span + 1)) seeded with the SMA of the first
    ``span`` values; None with fewer than ``span`` values."""
    if span < 1 or len(values) < span:
        return None
    alpha = 2.0 / (span + 1)
    avg = sum(values[:span]) / span
    for value in values[span:]:
        avg = alpha * value + (1.0 - alpha) * avg
    return avg


def _wilder(values: Sequence[float], period: int) -> float:
    """Wilder's smoothing: SMA of the first ``period`` values, then ``(prev*(n-1) + x) / n``."""
    avg = sum(values[:period]) / period
    for value in values[period:]:
        avg = (avg * (period - 1) + value) / period
    return avg


def rsi(closes: Sequence[float], period: int = RSI_PERIOD) -> float | None:
    """Wilder's RSI in [0, 100]; None with fewer than ``period + 1`` closes. All gains ->
    100, all losses -> 0, no movement at all -> 50."""
    if period < 1 or len(closes) < period + 1:
        return None
    changes = [b - a for a, b in itertools.pairwise(closes)]
    avg_gain = _wilder([max(c, 0.0) for c in changes], period)
    avg_loss = _wilder([max(-c, 0.0) for c in changes], period)
    if avg_loss == 0.0:
        return 50.0 if avg_gain == 0.0 else 100.0
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


def true_ranges(rows: Sequence[Sequence[float]]) -> list[float]:
    """``max(high - low, |high - prev close|, |low - prev close|)`` from the second row on."""
    out = []
    for prev, row in itertools.pairwise(rows):
        high, low, prev_close = row[2], row[3], prev[4]
        out.append(max(high - low, abs(high - prev_close), abs(low - prev_close)))
    return out


def atr(rows: Sequence[Sequence[float]], period: int = ATR_PERIOD) -> float | None:
    """Wilder's average true range; None with fewer than ``period + 1`` rows."""
    ranges = true_ranges(rows)
    if period < 1 or len(ranges) < period:
        return None
    return _wilder(ranges, period)


def candle_state(
    exchange: str,
    symbol: str,
    timeframe: str,
    rows: Sequence[Sequence[float]],
    as_of_ms: int,
    previous: CandleState | None,
) -> CandleState:
    """The indicators of a candle window (``rows`` non-empty, validated, oldest first)."""
    closes = [row[4] for row in rows]
    return CandleState(
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        close=closes[-1],
        rsi=rsi(closes),
        ema_fast=ema(closes, EMA_FAST),
        ema_slow=ema(closes, EMA_SLOW),
        atr=atr(rows),
        rows=len(rows),
        as_of_ms=as_of_ms,
        observations=(previous.observations if previous else 0) + 1,
    )
