"""Raw event bytes -> validated views, by the records' one contract (``topics``). Anything
that breaks it is an ``InvalidEvent`` whose ``reason`` goes to the dead-letter topic with
the original bytes.

Decoding is done here rather than by Faust's record codec so that a bad event is a
counted dead letter instead of a crashed stream, and because it is several times faster.
The checker's clock is the agent's (``now_ms``, one reading per batch); the message's
Kafka timestamp also bounds ``received_ms`` (``topics/_contract.py`` explains both).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from topics import (
    DEFAULT_LIMITS,
    InvalidRecord,
    Limits,
    WarmfleetError,
    book_fields,
    candles_fields,
    decode,
    symbol_key,
    ticker_fields,
)
from workers.agents._store import CandleSeries
from workers.analytics import TickerView


class InvalidEvent(WarmfleetError):
    """An event that cannot be decoded or fails validation; ``kind`` labels the metric."""

    def __init__(self, kind: str, reason: str) -> None:
        self.kind, self.reason = kind, reason
        super().__init__(f"{kind}: {reason}")


#: a decoded ``market.ohlcv`` message is the candle series it polled (one shape for both:
#: the store merges it as it comes)
CandlesView = CandleSeries


def _check_key(key: bytes | None, exchange: str, symbol: str) -> str:
    expected = symbol_key(exchange, symbol)
    text = key.decode("utf-8", "replace").strip('"') if key is not None else None
    if text != expected:
        raise InvalidEvent(
            "key_mismatch", f"message key {text!r} is not {expected!r} (exchange:symbol)"
        )
    return expected


def _invalid(exc: InvalidRecord) -> InvalidEvent:
    kind = "undecodable" if exc.reason == "undecodable" else "invalid"
    return InvalidEvent(kind, str(exc))


def _published_after(fields: dict[str, Any], timestamp_ms: int | None, limits: Limits) -> None:
    """A poller publishes what it received: ``received_ms`` is not after the message's
    Kafka timestamp (beyond clock skew)."""
    if timestamp_ms is not None and fields["received_ms"] > timestamp_ms + limits.max_ahead_ms:
        raise InvalidRecord(
            "received_after_publish",
            f"received_ms {fields['received_ms']} is after the message's timestamp {timestamp_ms}",
        )


def _checked(
    check: Callable[..., dict[str, Any]],
    raw: bytes | None,
    now_ms: int,
    timestamp_ms: int | None,
    limits: Limits,
) -> dict[str, Any]:
    """The record's fields by its contract's ``check``, published after received."""
    try:
        fields = check(decode(raw, limits), now_ms=now_ms, limits=limits)
        _published_after(fields, timestamp_ms, limits)
    except InvalidRecord as exc:
        raise _invalid(exc) from exc
    return fields


def decode_ticker(
    key: bytes | None,
    raw: bytes | None,
    *,
    now_ms: int,
    timestamp_ms: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[str, TickerView, dict[str, Any]]:
    """``(table key, ticker, document)`` from a ``market.tickers`` message: the document is
    the validated record as readers get it from ``/v2/tickers`` (its known fields only)."""
    fields = _checked(ticker_fields, raw, now_ms, timestamp_ms, limits)
    exchange, symbol = fields["exchange"], fields["symbol"]
    view = TickerView(
        exchange, symbol, fields["last"], fields["bid"], fields["ask"], fields["open"],
        fields["base_volume"], fields["quote_volume"], fields["change_pct"], fields["as_of_ms"],
    )  # fmt: skip
    return _check_key(key, exchange, symbol), view, fields


def decode_candles(
    key: bytes | None,
    raw: bytes | None,
    *,
    now_ms: int,
    timestamp_ms: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[str, CandleSeries]:
    """``(table key, candles)`` from a ``market.ohlcv`` message."""
    fields = _checked(candles_fields, raw, now_ms, timestamp_ms, limits)
    exchange, symbol = fields["exchange"], fields["symbol"]
    view = CandleSeries(
        exchange, symbol, fields["timeframe"], fields["rows"], fields["as_of_ms"],
        fields["received_ms"],
    )  # fmt: skip
    return _check_key(key, exchange, symbol), view


def decode_book(
    key: bytes | None,
    raw: bytes | None,
    *,
    now_ms: int,
    timestamp_ms: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[str, dict[str, Any], int]:
    """``(table key, book document, as_of_ms)`` from a ``market.books`` message. The
    document is what readers get from ``/v2/books``: both sides best first as polled, the
    best bid and ask, and ``depth``, the number of levels of the longer side."""
    fields = _checked(book_fields, raw, now_ms, timestamp_ms, limits)
    exchange, symbol = fields["exchange"], fields["symbol"]
    bids, asks = fields["bids"], fields["asks"]
    document = {
        "exchange": exchange, "symbol": symbol, "bids": bids, "asks": asks,
        "best_bid": bids[0][0], "best_ask": asks[0][0], "depth": max(len(bids), len(asks)),
    }  # fmt: skip
    return _check_key(key, exchange, symbol), document, fields["as_of_ms"]
