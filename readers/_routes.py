"""What each reader route means: path parameters -> a validated cache key (pure)."""

from __future__ import annotations

import re
from functools import lru_cache

from topics import KEY_SPECS, DataType, data_type_of, key_for, validate_key

# re.ASCII: \d and \w stay ASCII; every pattern below spells out its ASCII classes anyway
_EXCHANGE = re.compile(r"[a-z][a-z0-9_]{1,31}", re.ASCII)
_ASSET = re.compile(r"[A-Z0-9]{1,20}", re.ASCII)
_KEY = re.compile(r"[!-~]{1,250}", re.ASCII)  # printable ASCII, no space: what every tier takes
#: the largest max_age accepted, seconds (one year): bounded, so ``max_age * 1000`` stays an int
MAX_AGE_LIMIT_S = 31_536_000

# The same rules as JSON-schema patterns, for the OpenAPI document (schemathesis holds the
# reader to them: what they accept is never a 400, what they refuse always is).
EXCHANGE_PATTERN = "^ *[A-Za-z][A-Za-z0-9_]{1,31} *$"
SYMBOL_PATTERN = "^ *[A-Za-z0-9]{1,20}[-/_][A-Za-z0-9]{1,20} *$"
KEY_PATTERN = "^[!-~]{1,250}$"
TIMEFRAME_PATTERN = "^[0-9]{1,3}[mhdwM]$"
#: candles: the rows a cached value holds at most, and what ``limit`` defaults to
MAX_CANDLES = 500
DEFAULT_CANDLES = 100
_TIMEFRAME = re.compile(TIMEFRAME_PATTERN, re.ASCII)
_LIMIT = re.compile(r"[0-9]{1,3}", re.ASCII)
_HINT = re.compile(r"^(\d+)([smh])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600}


class BadRequest(ValueError):
    """The client's request is malformed; the message tells them what to send instead."""


def exchange_id(raw: str) -> str:
    # ASCII first: str.lower() folds some non-ASCII letters into ASCII ones (K, the Kelvin
    # sign, becomes k), which would let two spellings reach one key
    exchange = raw.strip(" ").lower() if raw.isascii() else ""
    if not _EXCHANGE.fullmatch(exchange):
        raise BadRequest(f"exchange {raw!r} is not an exchange id (lowercase letters and digits)")
    return exchange


def symbol(raw: str) -> str:
    """``BTC/USDT``, ``btc-usdt``, ``BTC_USDT`` -> ``BTC/USDT``."""
    # ASCII first: str.upper() folds U+0131 (dotless i) into "I": "\u0131NJ-USDT" was INJ/USDT
    text = raw.strip(" ").upper().replace("-", "/").replace("_", "/") if raw.isascii() else ""
    base, sep, quote = text.partition("/")
    if not sep or not _ASSET.fullmatch(base) or not _ASSET.fullmatch(quote):
        raise BadRequest(f"symbol {raw!r} is not BASE/QUOTE (e.g. BTC/USDT or BTC-USDT)")
    return f"{base}/{quote}"


def max_age(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"max_age must be a number of seconds, got {raw!r}") from None
    if not 0 < value <= MAX_AGE_LIMIT_S:  # also refuses nan and inf
        raise BadRequest(
            f"max_age must be a number of seconds > 0 and <= {MAX_AGE_LIMIT_S}, got {raw!r}"
        )
    return value


def timeframe(raw: str | None) -> str:
    """A candle timeframe as ccxt spells it (``1m``, ``4h``, ``1d``, ``1w``, ``1M``)."""
    if raw is None:
        return "1m"
    if not _TIMEFRAME.fullmatch(raw):
        raise BadRequest(
            f"timeframe must be 1 to 3 digits and a unit m, h, d, w or M (e.g. 1m, 4h, 1d), "
            f"got {raw!r}"
        )
    return raw


def candle_limit(raw: str | None) -> int:
    """How many of the latest candles to answer: 1..500, default 100."""
    if raw is None:
        return DEFAULT_CANDLES
    value = int(raw) if _LIMIT.fullmatch(raw) else 0
    if not 1 <= value <= MAX_CANDLES:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_CANDLES}, got {raw!r}")
    return value


def raw_key(raw: str) -> str:
    if not _KEY.fullmatch(raw):
        raise BadRequest(
            f"key {raw!r} is not a cache key: 1 to 250 printable ASCII characters, no whitespace"
        )
    try:
        return validate_key(raw)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


@lru_cache(maxsize=65536)
def freshness_s(key: str) -> int:
    """The key's nominal freshness class (its ttl_hint: 15s, 1m, 5m) in seconds."""
    hint = KEY_SPECS[data_type_of(key)].ttl_hint
    match = _HINT.match(hint)
    return int(match.group(1)) * _UNIT_S[match.group(2)] if match else 15


# Route -> key is pure and hot keys repeat: memoised (failures raise and are not cached).
@lru_cache(maxsize=65536)
def ticker_key(prefix: str, exchange: str, sym: str) -> str:
    return key_for(DataType.TICKERS, exchange_id(exchange), symbol(sym), prefix=prefix)


@lru_cache(maxsize=65536)
def book_key(prefix: str, exchange: str, sym: str) -> str:
    return key_for(DataType.BOOKS, exchange_id(exchange), symbol(sym), prefix=prefix)


@lru_cache(maxsize=65536)
def candles_key(prefix: str, exchange: str, sym: str, frame: str) -> str:
    return key_for(DataType.CANDLES, exchange_id(exchange), symbol(sym), frame, prefix=prefix)


def exchange_of(key: str) -> str:
    """The exchange a key's data comes from (its first id: ``...:15s:binance:BTC/USDT``);
    "" when the key names none (the all-exchange overview, a foreign key)."""
    parts = key.split(":", 6)
    named = len(parts) > 5 and parts[5] != "all" and _EXCHANGE.fullmatch(parts[5])
    return parts[5] if named else ""


@lru_cache(maxsize=4096)
def overview_key(prefix: str, scope: str = "all") -> str:
    return key_for(
        DataType.OVERVIEW, "all" if scope == "all" else exchange_id(scope), prefix=prefix
    )


@lru_cache(maxsize=65536)
def analysis_keys(prefix: str, exchange: str, sym: str) -> tuple[str, str]:
    ex, s = exchange_id(exchange), symbol(sym)
    return (
        key_for(DataType.VOLATILITY, ex, s, prefix=prefix),
        key_for(DataType.SIGNALS, ex, s, prefix=prefix),
    )
