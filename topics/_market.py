"""The one decode-and-validate of each market record (``Ticker``, ``Candles``, ``BookTop``).

Each ``*_fields`` function takes a plain dict in the record's own field names (orjson's on
the agent side, ccxt's renamed by ``topics._ccxt`` on the poller side) and returns a new
dict holding the record's known fields only, checked and normalised (numbers as floats,
timestamps as ints), or raises ``InvalidRecord``. A field the record does not define is
refused (``unknown_field``; Faust's ``__faust`` metadata is allowed and dropped): nothing
passes through unchecked. ccxt's own extras (``info``, ``vwap`` ...) never get that far,
the edge adapter picks the known ones. A new field is therefore added to the contract (and
the agents deployed) before any producer sends it. ``decode`` turns message bytes into a
dict, refusing oversized messages before parsing them. ``topics._contract`` documents the
time window.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from topics._contract import (
    DEFAULT_LIMITS,
    InvalidRecord,
    Limits,
    as_of,
    instant,
    optional_price,
    percent,
    price,
    received,
    show,
    symbol,
    text,
    volume,
)

TICKER_FIELDS = (
    "exchange", "symbol", "last", "bid", "ask", "high", "low", "open", "base_volume",
    "quote_volume", "change_pct", "as_of_ms", "received_ms",
)  # fmt: skip
CANDLES_FIELDS = ("exchange", "symbol", "timeframe", "rows", "as_of_ms", "received_ms")
BOOK_FIELDS = ("exchange", "symbol", "bids", "asks", "as_of_ms", "received_ms")
#: Faust's metadata key, the only one a message may carry beyond the record's fields
FAUST_KEY = "__faust"
_TICKER_KEYS = frozenset((*TICKER_FIELDS, FAUST_KEY))
_CANDLES_KEYS = frozenset((*CANDLES_FIELDS, FAUST_KEY))
_BOOK_KEYS = frozenset((*BOOK_FIELDS, FAUST_KEY))

#: ccxt's timeframe units, in ms
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000,
            "M": 2_678_400_000, "y": 31_622_400_000}  # fmt: skip


def decode(raw: bytes | None, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """A message value as a JSON object; ``undecodable`` / ``oversized`` otherwise."""
    if raw is None:
        raise InvalidRecord("undecodable", "empty message value")
    if len(raw) > limits.max_record_bytes:
        raise InvalidRecord(
            "oversized", f"{len(raw)} bytes, more than the {limits.max_record_bytes} allowed"
        )
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord("undecodable", f"not JSON: {exc}") from exc
    if type(obj) is not dict:
        raise InvalidRecord("undecodable", f"not a JSON object but {type(obj).__name__}")
    return obj


def _known_only(obj: Mapping[str, Any], allowed: frozenset[str]) -> None:
    if not obj.keys() <= allowed:
        unknown = sorted(str(k)[:40] for k in obj.keys() - allowed)[:5]
        raise InvalidRecord("unknown_field", f"fields the record does not define: {unknown}")


def timeframe_ms(timeframe: str) -> int:
    """``"1m"`` -> 60000; ``InvalidRecord`` for what ccxt would not name a timeframe."""
    count, unit = timeframe[:-1], timeframe[-1:]
    if not count.isdigit() or unit not in _UNIT_MS or int(count) == 0:
        raise InvalidRecord(
            "bad_field", f"timeframe must be like 1m / 4h / 1d, got {show(timeframe)}"
        )
    return int(count) * _UNIT_MS[unit]


def ticker_fields(
    obj: Mapping[str, Any], *, now_ms: int, limits: Limits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """A ``Ticker``'s fields, checked: ``last`` required, every other price optional."""
    _known_only(obj, _TICKER_KEYS)
    get = obj.get
    bid = optional_price(get("bid"), "bid", limits)
    ask = optional_price(get("ask"), "ask", limits)
    if bid is not None and ask is not None and bid > ask:
        raise InvalidRecord("crossed_quote", f"bid {show(bid)} is above ask {show(ask)}")
    high = optional_price(get("high"), "high", limits)
    low = optional_price(get("low"), "low", limits)
    if high is not None and low is not None and high < low:
        raise InvalidRecord("high_below_low", f"high {show(high)} is below low {show(low)}")
    received_ms = received(obj, now_ms, limits)
    return {
        "exchange": text(obj, "exchange"),
        "symbol": symbol(obj),
        "last": price(get("last"), "last", limits),
        "bid": bid,
        "ask": ask,
        "high": high,
        "low": low,
        "open": optional_price(get("open"), "open", limits),
        "base_volume": volume(get("base_volume"), "base_volume", limits),
        "quote_volume": volume(get("quote_volume"), "quote_volume", limits),
        "change_pct": percent(get("change_pct"), "change_pct"),
        "as_of_ms": as_of(obj, received_ms, limits.max_age_ms, limits),
        "received_ms": received_ms,
    }


def _rows(value: Any, limits: Limits) -> list[list[float]]:
    if type(value) is not list or not value:
        raise InvalidRecord("empty_candles", "rows must be a non-empty list of OHLCV rows")
    if len(value) > limits.max_rows:
        raise InvalidRecord("too_many_rows", f"{len(value)} rows, at most {limits.max_rows}")
    clean: list[list[float]] = []
    previous = -1
    for i, row in enumerate(value):
        if type(row) is not list or len(row) != 6:
            raise InvalidRecord("bad_candle", f"rows[{i}] must be [open_ms, o, h, l, c, v]")
        if any(x is None for x in row):
            raise InvalidRecord("null_field", f"rows[{i}] holds a null: {show(row)}")
        open_ms = instant(row[0], f"rows[{i}][0]")
        o, h, low, c = (price(x, f"rows[{i}]", limits) for x in row[1:5])
        v = volume(row[5], f"rows[{i}][5]", limits)
        if h < max(o, c, low) or low > min(o, c):
            raise InvalidRecord("bad_candle", f"rows[{i}] high/low do not bound open/close")
        if open_ms <= previous:
            raise InvalidRecord("unordered_candles", f"rows[{i}] is not after the row before it")
        previous = open_ms
        clean.append([open_ms, o, h, low, c, v or 0.0])
    return clean


def candles_fields(
    obj: Mapping[str, Any], *, now_ms: int, limits: Limits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """A ``Candles``' fields, checked: rows ordered, each a sane OHLCV, none opened after
    ``as_of_ms``."""
    _known_only(obj, _CANDLES_KEYS)
    timeframe = text(obj, "timeframe")
    span = timeframe_ms(timeframe)
    rows = _rows(obj.get("rows"), limits)
    received_ms = received(obj, now_ms, limits)
    as_of_ms = as_of(obj, received_ms, max(limits.max_age_ms, 2 * span), limits)
    if rows[-1][0] > as_of_ms:
        raise InvalidRecord("timestamp_in_future", "the last row opens after as_of_ms")
    return {
        "exchange": text(obj, "exchange"),
        "symbol": symbol(obj),
        "timeframe": timeframe,
        "rows": rows,
        "as_of_ms": as_of_ms,
        "received_ms": received_ms,
    }


def _levels(value: Any, side: str, descending: bool, limits: Limits) -> list[list[float]]:
    if type(value) is not list:
        raise InvalidRecord("bad_book_level", f"{side} must be a list of [price, amount]")
    if not value:
        raise InvalidRecord("empty_book_side", f"{side} is empty")
    if len(value) > limits.max_rows:
        raise InvalidRecord("too_many_rows", f"{len(value)} {side}, at most {limits.max_rows}")
    out: list[list[float]] = []
    for level in value:
        if type(level) is not list or len(level) != 2:
            raise InvalidRecord(
                "bad_book_level", f"{side} level {show(level)} is not [price, amount]"
            )
        p, amount = price(level[0], side, limits), volume(level[1], side, limits)
        if not amount:
            raise InvalidRecord("bad_book_level", f"{side} level {show(level)} has no amount")
        if out and (p >= out[-1][0] if descending else p <= out[-1][0]):
            raise InvalidRecord("bad_book_level", f"{side} are not sorted best first")
        out.append([p, amount])
    return out


def book_fields(
    obj: Mapping[str, Any], *, now_ms: int, limits: Limits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """A ``BookTop``'s fields, checked: both sides sorted best first, not crossed."""
    _known_only(obj, _BOOK_KEYS)
    bids = _levels(obj.get("bids"), "bids", True, limits)
    asks = _levels(obj.get("asks"), "asks", False, limits)
    if bids[0][0] >= asks[0][0]:
        raise InvalidRecord(
            "crossed_book", f"best bid {show(bids[0][0])} >= best ask {show(asks[0][0])}"
        )
    received_ms = received(obj, now_ms, limits)
    return {
        "exchange": text(obj, "exchange"),
        "symbol": symbol(obj),
        "bids": bids,
        "asks": asks,
        "as_of_ms": as_of(obj, received_ms, limits.max_age_ms, limits),
        "received_ms": received_ms,
    }
