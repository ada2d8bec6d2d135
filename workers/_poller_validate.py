"""Turn what ccxt returned into ``topics`` records, or say why not.

ccxt does not raise on garbage: an empty or truncated 200 body comes back as tickers with
``None`` fields and candles made of ``None``. Every payload is therefore checked here,
and anything that is not a sane market observation becomes a ``Rejection`` (counted and
logged by the caller), never a record. Pure functions: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from topics.records import BookTop, Candles, Ticker

#: exchange timestamps further ahead of our clock than this are not believed
MAX_FUTURE_SKEW_MS = 5 * 60 * 1000


@dataclass(frozen=True, slots=True)
class Rejection:
    symbol: str
    reason: str  # short snake_case, a metric label value

    def __str__(self) -> str:
        return f"{self.symbol}: {self.reason}"


def _num(value: Any) -> float | None:
    """A finite float, or None for missing / NaN / infinite / non-numeric."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _timestamp(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if math.isfinite(value) and value > 0 else None


def ticker_record(
    exchange: str, symbol: str, raw: Mapping[str, Any] | None, received_ms: int
) -> Ticker | Rejection:
    if not isinstance(raw, Mapping):
        return Rejection(symbol, "missing_ticker")
    last = _num(raw.get("last"))
    if last is None:
        return Rejection(symbol, "no_last_price")
    if last <= 0:
        return Rejection(symbol, "non_positive_price")
    as_of = _timestamp(raw.get("timestamp"))
    if as_of is None:
        return Rejection(symbol, "no_timestamp")
    if as_of > received_ms + MAX_FUTURE_SKEW_MS:
        return Rejection(symbol, "timestamp_in_future")
    bid, ask = _num(raw.get("bid")), _num(raw.get("ask"))
    if (bid is not None and bid <= 0) or (ask is not None and ask <= 0):
        return Rejection(symbol, "non_positive_price")
    if bid is not None and ask is not None and bid > ask:
        return Rejection(symbol, "crossed_quote")
    high, low = _num(raw.get("high")), _num(raw.get("low"))
    if high is not None and low is not None and high < low:
        return Rejection(symbol, "high_below_low")
    base_volume, quote_volume = _num(raw.get("baseVolume")), _num(raw.get("quoteVolume"))
    if (base_volume is not None and base_volume < 0) or (
        quote_volume is not None and quote_volume < 0
    ):
        return Rejection(symbol, "negative_volume")
    return Ticker(
        exchange=exchange,
        symbol=symbol,
        last=last,
        bid=bid,
        ask=ask,
        high=high,
        low=low,
        open=_num(raw.get("open")),
        base_volume=base_volume,
        quote_volume=quote_volume,
        change_pct=_num(raw.get("percentage")),
        as_of_ms=as_of,
        received_ms=received_ms,
    )


def candles_record(
    exchange: str, symbol: str, timeframe: str, raw: Any, received_ms: int
) -> Candles | Rejection:
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes) or not raw:
        return Rejection(symbol, "empty_candles")
    rows: list[list[float]] = []
    previous = -1
    for row in raw:
        if not isinstance(row, Sequence) or isinstance(row, str | bytes) or len(row) < 6:
            return Rejection(symbol, "bad_candle")
        open_ms = _timestamp(row[0])
        o, h, low, c, v = (_num(x) for x in row[1:6])
        if open_ms is None or o is None or h is None or low is None or c is None or v is None:
            return Rejection(symbol, "null_field")
        if min(o, h, low, c) <= 0 or v < 0 or h < max(o, c, low) or low > min(o, c):
            return Rejection(symbol, "bad_candle")
        if open_ms <= previous:
            return Rejection(symbol, "unordered_candles")
        previous = open_ms
        rows.append([open_ms, o, h, low, c, v])
    if previous > received_ms + MAX_FUTURE_SKEW_MS:
        return Rejection(symbol, "timestamp_in_future")
    return Candles(
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        rows=rows,
        as_of_ms=previous,
        received_ms=received_ms,
    )


def _levels(raw: Any, depth: int, descending: bool) -> list[list[float]] | None:
    """Top ``depth`` levels as ``[price, amount]``; None if any level is bad or unsorted."""
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        return None
    out: list[list[float]] = []
    for level in raw[:depth]:
        if not isinstance(level, Sequence) or isinstance(level, str | bytes) or len(level) < 2:
            return None
        price, amount = _num(level[0]), _num(level[1])
        if price is None or amount is None or price <= 0 or amount <= 0:
            return None
        if out and (price >= out[-1][0] if descending else price <= out[-1][0]):
            return None
        out.append([price, amount])
    return out


def book_record(
    exchange: str, symbol: str, raw: Mapping[str, Any] | None, depth: int, received_ms: int
) -> BookTop | Rejection:
    if not isinstance(raw, Mapping):
        return Rejection(symbol, "missing_book")
    bids = _levels(raw.get("bids"), depth, descending=True)
    asks = _levels(raw.get("asks"), depth, descending=False)
    if bids is None or asks is None:
        return Rejection(symbol, "bad_book_level")
    if not bids or not asks:
        return Rejection(symbol, "empty_book_side")
    if bids[0][0] >= asks[0][0]:
        return Rejection(symbol, "crossed_book")
    # Binance's /depth carries no timestamp: the book is as of when we received it
    as_of = _timestamp(raw.get("timestamp")) or received_ms
    if as_of > received_ms + MAX_FUTURE_SKEW_MS:
        return Rejection(symbol, "timestamp_in_future")
    return BookTop(
        exchange=exchange,
        symbol=symbol,
        bids=bids,
        asks=asks,
        as_of_ms=as_of,
        received_ms=received_ms,
    )
