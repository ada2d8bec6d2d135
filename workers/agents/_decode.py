"""Raw event bytes -> validated views. Anything that is not a well-formed record is an
``InvalidEvent`` whose ``reason`` goes to the dead-letter topic with the original bytes.

Decoding is done here rather than by Faust's record codec so that a bad event is a
counted dead letter instead of a crashed stream, and because it is several times faster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from topics import WarmfleetError, symbol_key
from workers.analytics import TickerView


class InvalidEvent(WarmfleetError):
    """An event that cannot be decoded or fails validation; ``kind`` labels the metric."""

    def __init__(self, kind: str, reason: str) -> None:
        self.kind, self.reason = kind, reason
        super().__init__(f"{kind}: {reason}")


@dataclass(frozen=True, slots=True)
class CandlesView:
    exchange: str
    symbol: str
    timeframe: str
    rows: list[list[float]]
    as_of_ms: int


def _object(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        raise InvalidEvent("undecodable", "empty message value")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("undecodable", f"not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise InvalidEvent("undecodable", f"not a JSON object but {type(obj).__name__}")
    return obj


def _text(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value or value != value.strip():
        raise InvalidEvent("invalid", f"{name} must be a non-empty string, got {value!r}")
    return value


def _number(obj: dict[str, Any], name: str, *, optional: bool, positive: bool) -> float | None:
    value = obj.get(name)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent("invalid", f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or (number <= 0 if positive else number < 0):
        problem = "positive" if positive else "non-negative"
        raise InvalidEvent("invalid", f"{name} must be a finite {problem} number, got {value!r}")
    return number


def _timestamp(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidEvent("invalid", f"{name} must be a positive integer (ms), got {value!r}")
    return value


def _check_key(key: bytes | None, exchange: str, symbol: str) -> str:
    expected = symbol_key(exchange, symbol)
    text = key.decode("utf-8", "replace").strip('"') if key is not None else None
    if text != expected:
        raise InvalidEvent(
            "key_mismatch", f"message key {text!r} is not {expected!r} (exchange:symbol)"
        )
    return expected


def decode_ticker(key: bytes | None, raw: bytes | None) -> tuple[str, TickerView]:
    """``(table key, ticker)`` from a ``market.tickers`` message."""
    table_key, view, _ = decode_ticker_document(key, raw)
    return table_key, view


def decode_ticker_document(
    key: bytes | None, raw: bytes | None
) -> tuple[str, TickerView, dict[str, Any]]:
    """``(table key, ticker, document)``: the document is the validated message as readers
    get it from ``/v2/tickers`` (every field the poller sent, without Faust's metadata)."""
    obj = _object(raw)
    exchange, symbol = _text(obj, "exchange"), _text(obj, "symbol")
    if "/" not in symbol:
        raise InvalidEvent("invalid", f"symbol must be BASE/QUOTE, got {symbol!r}")
    change = obj.get("change_pct")
    if change is not None and (
        isinstance(change, bool) or not isinstance(change, int | float) or not math.isfinite(change)
    ):
        raise InvalidEvent("invalid", f"change_pct must be a finite number, got {change!r}")
    view = TickerView(
        exchange=exchange,
        symbol=symbol,
        last=_number(obj, "last", optional=False, positive=True),  # type: ignore[arg-type]
        bid=_number(obj, "bid", optional=True, positive=False),
        ask=_number(obj, "ask", optional=True, positive=False),
        open=_number(obj, "open", optional=True, positive=False),
        base_volume=_number(obj, "base_volume", optional=True, positive=False),
        quote_volume=_number(obj, "quote_volume", optional=True, positive=False),
        change_pct=None if change is None else float(change),
        as_of_ms=_timestamp(obj, "as_of_ms"),
    )
    obj.pop("__faust", None)  # a fresh dict from orjson: the document is the rest of it
    return _check_key(key, exchange, symbol), view, obj


def decode_candles(key: bytes | None, raw: bytes | None) -> tuple[str, CandlesView]:
    """``(table key, candles)`` from a ``market.ohlcv`` message."""
    obj = _object(raw)
    exchange, symbol = _text(obj, "exchange"), _text(obj, "symbol")
    timeframe = _text(obj, "timeframe")
    rows = obj.get("rows")
    if not isinstance(rows, list) or not rows:
        raise InvalidEvent("invalid", "rows must be a non-empty list of OHLCV rows")
    clean: list[list[float]] = []
    previous_open = -math.inf
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) < 6:
            raise InvalidEvent("invalid", f"rows[{i}] must be [open_ms, o, h, l, c, v]")
        if any(isinstance(x, bool) or not isinstance(x, int | float) for x in row[:6]):
            raise InvalidEvent("invalid", f"rows[{i}] holds a non-number: {row!r}")
        values = [float(x) for x in row[:6]]
        open_ms, o, h, low, c, v = values
        if not all(math.isfinite(x) for x in values) or min(o, h, low, c) <= 0 or v < 0:
            raise InvalidEvent("invalid", f"rows[{i}] needs finite positive prices: {row!r}")
        if h < max(o, c, low) or low > min(o, c):
            raise InvalidEvent("invalid", f"rows[{i}] high/low do not bound open/close: {row!r}")
        if open_ms <= previous_open:
            raise InvalidEvent("invalid", f"rows[{i}] is not after the row before it")
        previous_open = open_ms
        clean.append(values)
    view = CandlesView(exchange, symbol, timeframe, clean, _timestamp(obj, "as_of_ms"))
    return _check_key(key, exchange, symbol), view
