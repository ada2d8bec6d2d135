"""Decoding and validation of raw events by the records' contract (no servers)."""

from __future__ import annotations

import time

import orjson
import pytest

from tests.workers.agents.conftest import ticker
from workers.agents import InvalidEvent, decode_candles, decode_ticker

KEY = b"binance:BTC/USDT"
NOW = int(time.time() * 1000)
T = NOW - 1_000


def test_a_good_ticker_decodes_with_its_table_key_and_known_fields_only() -> None:
    raw = ticker("binance", "BTC/USDT", 10.0, T, bid=9.0, ask=11.0)
    key, view, document = decode_ticker(KEY, raw, now_ms=NOW, timestamp_ms=NOW)
    assert key == "binance:BTC/USDT" and view.last == 10.0 and view.as_of_ms == T
    assert "__faust" not in document and document["bid"] == 9.0
    quoted = decode_ticker(b'"binance:BTC/USDT"', ticker("binance", "BTC/USDT", 1.0, T), now_ms=NOW)
    assert quoted[0] == key


@pytest.mark.parametrize(
    ("key", "raw", "kind", "says"),
    [
        (KEY, b"{nope", "undecodable", "not JSON"),
        (KEY, b"[1, 2]", "undecodable", "not a JSON object"),
        (KEY, None, "undecodable", "empty"),
        (KEY, ticker("binance", "BTC/USDT", -1.0, T), "invalid", "non_positive_price"),
        (KEY, ticker("binance", "BTC/USDT", 1.0, 0), "invalid", "timestamp_too_old"),
        (KEY, ticker("binance", "BTC/USDT", 1.0, T, bid="x"), "invalid", "bid"),
        (KEY, ticker("binance", "BTCUSDT", 1.0, T), "invalid", "BASE/QUOTE"),
        (KEY, ticker("binance", "BTC/USDT", True, T), "invalid", "last must be"),
        # what the poller refuses, the agents refuse (the laxer rules of before accepted these)
        (KEY, ticker("binance", "BTC/USDT", 1.0, T, bid=0.0), "invalid", "non_positive_price"),
        (KEY, ticker("binance", "BTC/USDT", 1.0, T, bid=2.0, ask=1.0), "invalid", "crossed"),
        (b"okx:BTC/USDT", ticker("binance", "BTC/USDT", 1.0, T), "key_mismatch", "okx"),
        (None, ticker("binance", "BTC/USDT", 1.0, T), "key_mismatch", "None"),
    ],
)
def test_bad_tickers_are_invalid_events(
    key: bytes | None, raw: bytes | None, kind: str, says: str
) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_ticker(key, raw, now_ms=NOW)
    assert caught.value.kind == kind and says in caught.value.reason


def test_received_ms_is_bounded_by_the_agent_clock_and_the_message_timestamp() -> None:
    ahead = ticker("binance", "BTC/USDT", 1.0, T, received_ms=NOW + 3_600_000)
    with pytest.raises(InvalidEvent, match="received_in_future"):
        decode_ticker(KEY, ahead, now_ms=NOW)
    late = ticker("binance", "BTC/USDT", 1.0, T, received_ms=NOW)
    with pytest.raises(InvalidEvent, match="received_after_publish"):
        decode_ticker(KEY, late, now_ms=NOW, timestamp_ms=NOW - 60_000)
    decode_ticker(KEY, late, now_ms=NOW, timestamp_ms=NOW)


def candles(rows: object) -> bytes:
    return orjson.dumps({"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1m",
                         "rows": rows, "as_of_ms": T, "received_ms": T})  # fmt: skip


def test_candles_validate_every_row() -> None:
    good = [[T - 120_000, 10, 11, 9, 10.5, 3], [T - 60_000, 10.5, 12, 10, 11, 4]]
    key, view = decode_candles(KEY, candles(good), now_ms=NOW)
    assert key == "binance:BTC/USDT" and len(view.rows) == 2 and view.rows[1][4] == 11.0
    for rows, says in [
        ([], "non-empty"),
        ([[T, 10, 11, 9]], "rows[0]"),
        ([[T, 10, 9, 11, 10, 1]], "high/low"),  # high below low
        ([[T, 10, 11, 9, 10, 1], [T - 1, 10, 11, 9, 10, 1]], "not after"),
        ([[T, 10, 11, 9, "x", 1]], "wrong_type"),
    ]:
        with pytest.raises(InvalidEvent) as caught:
            decode_candles(KEY, candles(rows), now_ms=NOW)
        assert says in caught.value.reason
