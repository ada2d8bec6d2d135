"""Decoding and validation of raw events (no servers)."""

from __future__ import annotations

import pytest

from tests.workers.agents.conftest import ticker
from workers.agents import InvalidEvent, decode_candles, decode_ticker

KEY = b"binance:BTC/USDT"


def test_a_good_ticker_decodes_with_its_table_key() -> None:
    key, view = decode_ticker(KEY, ticker("binance", "BTC/USDT", 10.0, 5, bid=9.0, ask=11.0))
    assert key == "binance:BTC/USDT" and view.last == 10.0 and view.as_of_ms == 5
    assert decode_ticker(b'"binance:BTC/USDT"', ticker("binance", "BTC/USDT", 1.0, 1))[0] == key


@pytest.mark.parametrize(
    ("key", "raw", "kind", "says"),
    [
        (KEY, b"{nope", "undecodable", "not JSON"),
        (KEY, b"[1, 2]", "undecodable", "not a JSON object"),
        (KEY, None, "undecodable", "empty"),
        (KEY, ticker("binance", "BTC/USDT", -1.0, 5), "invalid", "last must be"),
        (KEY, ticker("binance", "BTC/USDT", float("nan"), 5), "invalid", "last must be"),
        (KEY, ticker("binance", "BTC/USDT", 1.0, 0), "invalid", "as_of_ms"),
        (KEY, ticker("binance", "BTC/USDT", 1.0, 5, bid="x"), "invalid", "bid"),
        (KEY, ticker("binance", "BTCUSDT", 1.0, 5), "invalid", "BASE/QUOTE"),
        (KEY, ticker("binance", "BTC/USDT", True, 5), "invalid", "last must be"),
        (b"okx:BTC/USDT", ticker("binance", "BTC/USDT", 1.0, 5), "key_mismatch", "okx"),
        (None, ticker("binance", "BTC/USDT", 1.0, 5), "key_mismatch", "None"),
    ],
)
def test_bad_tickers_are_invalid_events(
    key: bytes | None, raw: bytes | None, kind: str, says: str
) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_ticker(key, raw)
    assert caught.value.kind == kind and says in caught.value.reason


def candles(rows: object) -> bytes:
    import orjson

    return orjson.dumps({"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1m",
                         "rows": rows, "as_of_ms": 9, "received_ms": 9})  # fmt: skip


def test_candles_validate_every_row() -> None:
    key, view = decode_candles(KEY, candles([[1, 10, 11, 9, 10.5, 3], [2, 10.5, 12, 10, 11, 4]]))
    assert key == "binance:BTC/USDT" and len(view.rows) == 2 and view.rows[1][4] == 11.0
    for rows, says in [
        ([], "non-empty"),
        ([[1, 10, 11, 9]], "rows[0]"),
        ([[1, 10, 9, 11, 10, 1]], "high/low"),  # high below low
        ([[2, 10, 11, 9, 10, 1], [1, 10, 11, 9, 10, 1]], "not after"),
        ([[1, 10, 11, 9, "x", 1]], "non-number"),
    ]:
        with pytest.raises(InvalidEvent) as caught:
            decode_candles(KEY, candles(rows))
        assert says in caught.value.reason
