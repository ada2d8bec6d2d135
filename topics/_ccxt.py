"""ccxt's unified structures -> ``topics`` records, or a ``Rejection`` saying why not.

The edge of the contract (cryptofeed style): ccxt's field names are renamed to the
records' here, and the one set of rules in ``topics._market`` decides. ccxt does not raise
on garbage: an empty or truncated 200 body comes back as tickers with ``None`` fields and
candles made of ``None``, so anything that is not a sane market observation becomes a
``Rejection`` (counted and logged by the caller), never a record. Pure: no I/O, no clock
(the poller's receive time is the checker's "now").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from topics._contract import DEFAULT_LIMITS, InvalidRecord, Limits
from topics._market import book_fields, candles_fields, ticker_fields
from topics.records import BookTop, Candles, Ticker

R = TypeVar("R", Ticker, Candles, BookTop)


@dataclass(frozen=True, slots=True)
class Rejection:
    symbol: str
    reason: str  # short snake_case, a metric label value

    def __str__(self) -> str:
        return f"{self.symbol}: {self.reason}"


def _ms(value: Any) -> Any:
    """ccxt timestamps are ints; an integral float is one too, anything else is left for
    the contract to refuse."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


def _list(value: Any) -> Any:
    """ccxt hands lists, tuples now and then: the contract takes lists."""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_list(x) for x in value]
    return value


def _pair(level: Any) -> Any:
    return level[:2] if isinstance(level, list) else level


def _record(
    record: Callable[..., R],
    check: Callable[..., dict[str, Any]],
    fields: dict[str, Any],
    received_ms: int,
    limits: Limits,
) -> R | Rejection:
    """``record(**fields)`` once the contract's ``check`` has passed them, else why not."""
    try:
        return record(**check(fields, now_ms=received_ms, limits=limits))
    except InvalidRecord as exc:
        return Rejection(fields["symbol"], exc.reason)


def ticker_record(
    exchange: str,
    symbol: str,
    raw: Mapping[str, Any] | None,
    received_ms: int,
    limits: Limits = DEFAULT_LIMITS,
) -> Ticker | Rejection:
    if not isinstance(raw, Mapping):
        return Rejection(symbol, "missing_ticker")
    fields = {
        "exchange": exchange, "symbol": symbol, "last": raw.get("last"), "bid": raw.get("bid"),
        "ask": raw.get("ask"), "high": raw.get("high"), "low": raw.get("low"),
        "open": raw.get("open"), "base_volume": raw.get("baseVolume"),
        "quote_volume": raw.get("quoteVolume"), "change_pct": raw.get("percentage"),
        "as_of_ms": _ms(raw.get("timestamp")), "received_ms": received_ms,
    }  # fmt: skip
    return _record(Ticker, ticker_fields, fields, received_ms, limits)


def candles_record(
    exchange: str,
    symbol: str,
    timeframe: str,
    raw: Any,
    received_ms: int,
    limits: Limits = DEFAULT_LIMITS,
) -> Candles | Rejection:
    rows = _list(raw)
    if not isinstance(rows, list) or not rows:
        return Rejection(symbol, "empty_candles")
    for row in rows:
        if isinstance(row, list) and row:
            row[0] = _ms(row[0])
    last_open = rows[-1][0] if isinstance(rows[-1], list) and rows[-1] else None
    fields = {
        "exchange": exchange, "symbol": symbol, "timeframe": timeframe, "rows": rows,
        "as_of_ms": last_open, "received_ms": received_ms,
    }  # fmt: skip
    return _record(Candles, candles_fields, fields, received_ms, limits)


def book_record(
    exchange: str,
    symbol: str,
    raw: Mapping[str, Any] | None,
    depth: int,
    received_ms: int,
    limits: Limits = DEFAULT_LIMITS,
) -> BookTop | Rejection:
    if not isinstance(raw, Mapping):
        return Rejection(symbol, "missing_book")
    bids, asks = _list(raw.get("bids")), _list(raw.get("asks"))
    # ccxt levels may carry a third item (an order count): the contract keeps [price, amount]
    fields = {
        "exchange": exchange, "symbol": symbol,
        "bids": [_pair(level) for level in bids[:depth]] if isinstance(bids, list) else bids,
        "asks": [_pair(level) for level in asks[:depth]] if isinstance(asks, list) else asks,
        # Binance's /depth carries no timestamp: the book is as of when we received it
        "as_of_ms": _ms(raw.get("timestamp")) or received_ms, "received_ms": received_ms,
    }  # fmt: skip
    return _record(BookTop, book_fields, fields, received_ms, limits)
