"""The one contract of each market record (no servers): what no exchange sends is refused
with a reason, by the same rules for the poller (ccxt dicts) and the agents (bytes)."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from topics import (
    DEFAULT_LIMITS,
    TICKER_FIELDS,
    InvalidRecord,
    Limits,
    Rejection,
    book_fields,
    candles_fields,
    decode,
    namespace_of,
    phase_change_fields,
    record_bytes,
    ticker_fields,
    ticker_record,
    timeframe_ms,
)
from topics.records import DeadLetter, MarketOverview, SymbolAnalysis, Ticker

NOW = 1_796_000_000_000  # 2026-11-30
GOOD: dict[str, Any] = {
    "exchange": "binance", "symbol": "ZEC/USDT", "last": 30.5, "bid": 30.4, "ask": 30.6,
    "high": 31.0, "low": 29.0, "open": 30.0, "base_volume": 1000.0, "quote_volume": 30500.0,
    "change_pct": 1.6, "as_of_ms": NOW - 400, "received_ms": NOW - 100,
}  # fmt: skip
YEAR_MS = 365 * 86_400_000

#: issue 12's poison set: what a hostile producer sent, and the reason each is refused
POISON: dict[str, tuple[dict[str, Any], str]] = {
    "future as_of": ({"as_of_ms": NOW + 10 * YEAR_MS}, "timestamp_in_future"),
    "as_of 1970": ({"as_of_ms": 1000}, "timestamp_too_old"),
    "last 1e-300": ({"last": 1e-300}, "price_out_of_bounds"),
    "bid above ask": ({"bid": 99.0, "ask": 1.0}, "crossed_quote"),
    "extra field": ({"injected": {"admin": True}}, "unknown_field"),
    "900 KB padding": ({"padding": "x" * 900_000}, "oversized"),
    "high a string": ({"high": "<script>alert(1)</script>"}, "wrong_type"),
    "received a word": ({"received_ms": "yesterday"}, "wrong_type"),
}


def wire(fields: dict[str, Any]) -> bytes:
    return orjson.dumps({**fields, "__faust": {"ns": "topics.records.Ticker"}})


def test_a_good_ticker_passes_with_its_known_fields_only() -> None:
    got = ticker_fields(decode(wire(GOOD)), now_ms=NOW)
    assert got == GOOD and tuple(got) == TICKER_FIELDS  # __faust dropped, order fixed
    assert all(type(got[k]) is float for k in ("last", "bid", "high", "base_volume"))


@pytest.mark.parametrize("case", sorted(POISON))
def test_the_poison_set_is_refused_with_its_reason(case: str) -> None:
    change, reason = POISON[case]
    with pytest.raises(InvalidRecord) as caught:
        ticker_fields(decode(wire({**GOOD, **change})), now_ms=NOW)
    assert caught.value.reason == reason


@pytest.mark.parametrize("case", sorted(set(POISON) - {"900 KB padding", "extra field"}))
def test_the_poller_refuses_the_same_poison_from_ccxt(case: str) -> None:
    """One set of rules: the ccxt route (renamed at the edge) refuses what the agents do."""
    change, reason = POISON[case]
    renamed = {"as_of_ms": "timestamp", "base_volume": "baseVolume"}
    ccxt = {renamed.get(k, k): v for k, v in {**GOOD, **change}.items()}
    got = ticker_record("binance", "ZEC/USDT", ccxt, NOW)
    if case == "received a word":
        assert isinstance(got, Ticker)  # ccxt has no received_ms: the poller sets it
    else:
        assert got == Rejection("ZEC/USDT", reason)


def test_ccxt_extras_are_dropped_at_the_edge() -> None:
    ccxt = {"timestamp": NOW - 5, "last": 1.0, "info": {"raw": "x" * 1000}, "vwap": 1.0}
    got = ticker_record("okx", "A/B", ccxt, NOW)
    assert isinstance(got, Ticker) and got.asdict().keys() == set(TICKER_FIELDS)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"as_of_ms": NOW - 100 + DEFAULT_LIMITS.max_ahead_ms + 1}, "timestamp_in_future"),
        ({"as_of_ms": NOW - 100 - DEFAULT_LIMITS.max_age_ms - 1}, "timestamp_too_old"),
        ({"received_ms": NOW + DEFAULT_LIMITS.max_ahead_ms + 1}, "received_in_future"),
        ({"received_ms": NOW - DEFAULT_LIMITS.max_age_ms - 1}, "received_too_old"),
        ({"as_of_ms": float(NOW)}, "wrong_type"),
        ({"as_of_ms": True}, "wrong_type"),
        ({"as_of_ms": None}, "no_timestamp"),
        ({"last": None}, "missing_field"),
        ({"last": 0.0}, "non_positive_price"),
        ({"last": -1}, "non_positive_price"),
        ({"last": 1e13}, "price_out_of_bounds"),
        ({"last": True}, "wrong_type"),
        ({"bid": 5e-324}, "price_out_of_bounds"),  # the smallest denormal
        ({"high": 28.0}, "high_below_low"),
        ({"base_volume": -1.0}, "negative_volume"),
        ({"quote_volume": 1e-300}, "volume_out_of_bounds"),
        ({"change_pct": -150.0}, "out_of_bounds"),
        ({"symbol": "ZECUSDT"}, "bad_symbol"),
        ({"symbol": "\u0131NJ/USDT"}, "bad_field"),  # dotless i: not ASCII
        ({"symbol": "A/B" * 30}, "bad_field"),
        ({"exchange": ""}, "bad_field"),
    ],
)
def test_each_rule(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidRecord) as caught:
        ticker_fields({**GOOD, **change}, now_ms=NOW)
    assert caught.value.reason == reason


def test_the_window_edges_are_inside() -> None:
    limits = DEFAULT_LIMITS
    for change in (
        {"as_of_ms": NOW - 100 + limits.max_ahead_ms},
        {"received_ms": NOW + limits.max_ahead_ms, "as_of_ms": NOW},
        {"as_of_ms": NOW - 100 - limits.max_age_ms},
        {"bid": 30.5, "ask": 30.5, "base_volume": 0, "change_pct": -100.0},
    ):
        ticker_fields({**GOOD, **change}, now_ms=NOW)


def test_limits_are_configurable() -> None:
    tight = Limits(max_ahead_ms=0, max_age_ms=1_000, max_record_bytes=100)
    with pytest.raises(InvalidRecord, match="timestamp_too_old"):
        ticker_fields(GOOD, now_ms=NOW, limits=Limits(max_age_ms=200))
    with pytest.raises(InvalidRecord, match="oversized"):
        decode(wire(GOOD), tight)


def test_undecodable_messages() -> None:
    for raw in (None, b"{nope", b"[1]", b'"x"'):
        with pytest.raises(InvalidRecord) as caught:
            decode(raw)
        assert caught.value.reason == "undecodable"


finite = st.floats(allow_nan=True, allow_infinity=True)
anything = st.one_of(
    st.none(), st.booleans(), st.integers(), finite, st.text(max_size=5),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers()),
)  # fmt: skip


@given(field=st.sampled_from(TICKER_FIELDS), value=anything)
def test_whatever_a_field_holds_the_answer_is_a_clean_record_or_invalid_record(
    field: str, value: Any
) -> None:
    try:
        got = ticker_fields({**GOOD, field: value}, now_ms=NOW)
    except InvalidRecord as exc:
        assert exc.reason.replace("_", "").isalpha()
        return
    # what passes is sane: finite prices in bounds, bid <= ask, timestamps in the window
    for name in ("last", "bid", "ask", "high", "low", "open"):
        x = got[name]
        assert x is None or (type(x) is float and 1e-12 <= x <= 1e12 and math.isfinite(x))
    assert got["bid"] is None or got["ask"] is None or got["bid"] <= got["ask"]
    assert NOW - 86_400_000 <= got["received_ms"] <= NOW + 5_000
    assert got["received_ms"] - 86_400_000 <= got["as_of_ms"] <= got["received_ms"] + 5_000


@given(st.floats(min_value=0.0, max_value=1e-12, exclude_max=True))
def test_no_tiny_or_denormal_price_passes(tiny: float) -> None:
    with pytest.raises(InvalidRecord):
        ticker_fields({**GOOD, "last": tiny}, now_ms=NOW)


def candles(rows: Any, **change: Any) -> dict[str, Any]:
    return {"exchange": "binance", "symbol": "A/B", "timeframe": "1m", "rows": rows,
            "as_of_ms": NOW - 60_000, "received_ms": NOW, **change}  # fmt: skip


def test_candles() -> None:
    rows = [[NOW - 120_000, 10, 11, 9, 10.5, 3], [NOW - 60_000, 10.5, 12, 10, 11, 4]]
    got = candles_fields(candles(rows), now_ms=NOW)
    assert got["rows"][1] == [NOW - 60_000, 10.5, 12.0, 10.0, 11.0, 4.0]
    for bad, reason in [
        (candles([]), "empty_candles"),
        (candles([rows[0][:4]]), "bad_candle"),
        (candles([[NOW, 10, 9, 11, 10, 1]]), "bad_candle"),
        (candles([rows[1], rows[0]]), "unordered_candles"),
        (candles([[NOW - 60_000, 10, 11, 9, "x", 1]]), "wrong_type"),
        (candles([[NOW, 10, 11, 9, 10, 1]]), "timestamp_in_future"),  # opens after as_of
        (candles(rows, timeframe="1x"), "bad_field"),
        (candles(rows, injected=1), "unknown_field"),
        (candles(rows, as_of_ms=NOW + YEAR_MS), "timestamp_in_future"),
        (candles(rows * 600), "too_many_rows"),
    ]:
        with pytest.raises(InvalidRecord) as caught:
            candles_fields(bad, now_ms=NOW)
        assert caught.value.reason == reason, bad


def test_a_candle_may_be_as_old_as_two_of_its_timeframes() -> None:
    assert timeframe_ms("1d") == 86_400_000 and timeframe_ms("4h") == 4 * 3_600_000
    old = NOW - 2 * 86_400_000 + 1
    candles_fields(candles([[old, 1, 1, 1, 1, 0]], timeframe="1d", as_of_ms=old), now_ms=NOW)
    with pytest.raises(InvalidRecord, match="timestamp_too_old"):
        candles_fields(candles([[old, 1, 1, 1, 1, 0]], as_of_ms=old), now_ms=NOW)


def test_books() -> None:
    book = {"exchange": "okx", "symbol": "A/B", "bids": [[99.0, 1.0], [98.0, 2]],
            "asks": [[101.0, 1.0]], "as_of_ms": NOW, "received_ms": NOW}  # fmt: skip
    assert book_fields(book, now_ms=NOW)["bids"] == [[99.0, 1.0], [98.0, 2.0]]
    for change, reason in [
        ({"bids": []}, "empty_book_side"),
        ({"bids": [[102.0, 1.0]]}, "crossed_book"),
        ({"bids": [[98.0, 1.0], [99.0, 1.0]]}, "bad_book_level"),
        ({"asks": [[101.0, 0.0]]}, "bad_book_level"),
        ({"asks": [[1e-300, 1.0]]}, "price_out_of_bounds"),
        ({"as_of_ms": NOW + YEAR_MS}, "timestamp_in_future"),
    ]:
        with pytest.raises(InvalidRecord) as caught:
            book_fields({**book, **change}, now_ms=NOW)
        assert caught.value.reason == reason


def test_phase_change() -> None:
    body = {"phase": "weekend", "intervals_s": {"tickers": 600, "overview": 600.0},
            "at_ms": NOW, "next_transition_ms": None, "__faust": {"ns": "x"}}  # fmt: skip
    got = phase_change_fields(orjson.dumps(body))
    assert got["intervals_s"] == {"tickers": 600.0, "overview": 600.0}
    assert got["volatility_boost"] == 1.0 and got["override_until_ms"] is None
    for change in (
        {"intervals_s": {"tickers": -1}}, {"intervals_s": {"tickers": "15"}},
        {"intervals_s": []}, {"phase": 3}, {"at_ms": "now"}, {"volatility_boost": 0},
    ):  # fmt: skip
        with pytest.raises(InvalidRecord):
            phase_change_fields(orjson.dumps({**body, **change}))


def test_output_records_are_what_faust_decodes_without_private_attributes() -> None:
    fields = {"source_topic": "t", "partition": 0, "offset": 1, "reason": "r", "key": None,
              "payload_b64": "", "at_ms": NOW}  # fmt: skip
    raw = record_bytes(DeadLetter, fields)
    assert orjson.loads(raw)["__faust"] == {"ns": "topics.records.DeadLetter"}
    letter = DeadLetter.loads(raw, serializer="json")
    assert isinstance(letter, DeadLetter) and letter.offset == 1
    assert namespace_of(SymbolAnalysis) == "topics.records.SymbolAnalysis"
    assert namespace_of(MarketOverview) == "topics.records.MarketOverview"
