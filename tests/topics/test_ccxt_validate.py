"""Payload validation: garbage from ccxt never becomes a record (the rules themselves are
tested in tests/topics/test_contract.py)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from topics import Rejection, book_record, candles_record, ticker_record
from topics.records import BookTop, Candles, Ticker

NOW = 1_750_000_000_000
GOOD: dict[str, Any] = {
    "symbol": "BTC/USDT", "timestamp": NOW - 500, "last": 100.0, "bid": 99.9, "ask": 100.1,
    "high": 101.0, "low": 98.0, "open": 99.0, "baseVolume": 10.0, "quoteVolume": 1000.0,
    "percentage": 1.01,
}  # fmt: skip


def test_a_good_ticker_is_normalised() -> None:
    record = ticker_record("binance", "BTC/USDT", GOOD, NOW)
    assert isinstance(record, Ticker)
    assert (record.exchange, record.symbol, record.last, record.as_of_ms, record.received_ms) == (
        "binance", "BTC/USDT", 100.0, NOW - 500, NOW,
    )  # fmt: skip
    assert (record.bid, record.ask, record.change_pct) == (99.9, 100.1, 1.01)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"last": None}, "missing_field"),
        ({"last": math.nan}, "price_out_of_bounds"),
        ({"last": "100"}, "wrong_type"),
        ({"last": 1e-300}, "price_out_of_bounds"),
        ({"timestamp": 1000}, "timestamp_too_old"),
        ({"timestamp": NOW + 6_000}, "timestamp_in_future"),
        ({"high": "<script>"}, "wrong_type"),
        ({"last": 0.0}, "non_positive_price"),
        ({"timestamp": None}, "no_timestamp"),
        ({"timestamp": NOW + 3_600_000}, "timestamp_in_future"),
        ({"bid": 100.2}, "crossed_quote"),
        ({"ask": -1.0}, "non_positive_price"),
        ({"high": 97.0}, "high_below_low"),
        ({"baseVolume": -5.0}, "negative_volume"),
    ],
)
def test_bad_tickers_are_rejected_with_a_reason(change: dict[str, Any], reason: str) -> None:
    assert ticker_record("okx", "BTC/USDT", {**GOOD, **change}, NOW) == Rejection(
        "BTC/USDT", reason
    )


def test_missing_ticker_is_rejected() -> None:
    assert ticker_record("okx", "X/Y", None, NOW) == Rejection("X/Y", "missing_ticker")


def test_candles_with_none_fields_or_bad_shapes_are_rejected() -> None:
    row = [NOW - 60_000, 1.0, 2.0, 0.5, 1.5, 3.0]
    good = candles_record("binance", "A/B", "1m", [row, [NOW, 1.5, 1.6, 1.4, 1.5, 1.0]], NOW)
    assert isinstance(good, Candles) and good.as_of_ms == NOW and len(good.rows) == 2
    cases = {
        "empty_candles": [],
        "null_field": [[9, None, None, None, None, None]],  # what ccxt makes of truncated JSON
        "bad_candle": [[NOW, 1.0, 0.9, 0.5, 1.5, 3.0]],  # high below close
        "unordered_candles": [row, row],
    }
    for reason, rows in cases.items():
        assert candles_record("binance", "A/B", "1m", rows, NOW) == Rejection("A/B", reason)


def test_books_crossed_empty_or_unsorted_are_rejected() -> None:
    bids, asks = [[99.0, 1.0], [98.0, 2.0]], [[101.0, 1.0], [102.0, 1.0]]
    good = book_record("binance", "A/B", {"bids": bids, "asks": asks, "timestamp": None}, 1, NOW)
    assert isinstance(good, BookTop)
    assert (good.bids, good.asks, good.as_of_ms) == ([[99.0, 1.0]], [[101.0, 1.0]], NOW)
    cases = {
        "empty_book_side": {"bids": [], "asks": asks},
        "crossed_book": {"bids": [[102.0, 1.0]], "asks": asks},
        "bad_book_level": {"bids": [[98.0, 1.0], [99.0, 1.0]], "asks": asks},
        "missing_book": None,
    }
    for reason, raw in cases.items():
        assert book_record("okx", "A/B", raw, 5, NOW) == Rejection("A/B", reason)
