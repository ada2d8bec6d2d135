"""The rules every market record obeys, wherever it comes from: what no exchange sends is an
``InvalidRecord`` with a short snake_case ``reason`` (a metric label) and a ``detail``.

One set of checks for the poller (before it publishes, from ccxt's dicts renamed at the
edge) and the agents (after they consume, from orjson's dicts), so a payload the poller
would refuse can never be cached because it arrived by another route. The checks are
plain comparisons on plain values: the agents run them ~60,000 times a second.

Time. Every record carries ``received_ms`` (when the poller got the data, its clock) and
``as_of_ms`` (the exchange's time for it). The validator is given ``now_ms``, the clock of
whoever checks: the poller passes its receive time, so ``received_ms == now_ms``; an agent
passes its own clock. Both instants must lie in a bounded window:

- ``received_ms`` in ``[now - max_age_ms, now + max_ahead_ms]``: a poller cannot have got
  data later than the agent reads it (beyond clock skew), and nothing older than the source
  topics' retention (one day) is replayed from Kafka;
- ``as_of_ms`` in ``[received - max_age, received + max_ahead_ms]`` where ``max_age`` is
  ``max_age_ms`` for tickers and books and ``max(max_age_ms, 2 x timeframe)`` for candles
  (a daily candle opened up to a day before it is polled).

An agent also knows the Kafka timestamp of the message (the producer's ``CreateTime``, or
the broker's ``LogAppendTime`` where a topic is configured so): a poller publishes after it
receives, so ``received_ms`` may not exceed it by more than ``max_ahead_ms``. A hostile
producer can forge both, which is why the agent's own clock bounds them as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from topics.errors import WarmfleetError

#: 2009-01-01 UTC: no market data any exchange sends is older; below this is garbage
EPOCH_FLOOR_MS = 1_230_768_000_000
DAY_MS = 86_400_000


class InvalidRecord(WarmfleetError, ValueError):
    """A record breaks its contract; ``reason`` is a snake_case metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """The bounds of the contract (``workers.settings`` reads the time and size ones from
    ``WARMFLEET_CONTRACT_*``)."""

    #: how far ahead of the checker's clock a timestamp may be (clock skew)
    max_ahead_ms: int = 5_000
    #: how far behind: the source topics' retention (tickers, books; candles by timeframe)
    max_age_ms: int = DAY_MS
    #: a message larger than this (JSON bytes) is refused before it is parsed
    max_record_bytes: int = 256 * 1024
    #: prices in [min_price, max_price]: positive, never denormal, never absurd
    min_price: float = 1e-12
    max_price: float = 1e12
    #: volumes are 0 or in [min_price, max_volume]
    max_volume: float = 1e20
    #: candle rows and book levels per record
    max_rows: int = 1_000


DEFAULT_LIMITS = Limits()


def show(value: Any) -> str:
    """``repr(value)``, cut short: a reason goes into logs and dead letters, and a hostile
    value can be megabytes."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def text(obj: Any, name: str) -> str:
    value = obj.get(name)
    if type(value) is not str or not value or len(value) > 64:
        raise InvalidRecord(
            "bad_field", f"{name} must be a string of 1-64 chars, got {show(value)}"
        )
    if not value.isascii() or not value.isprintable() or " " in value:
        raise InvalidRecord("bad_field", f"{name} must be printable ASCII, got {show(value)}")
    return value


def symbol(obj: Any) -> str:
    value = text(obj, "symbol")
    if "/" not in value:
        raise InvalidRecord("bad_symbol", f"symbol must be BASE/QUOTE, got {show(value)}")
    return value


def price(value: Any, name: str, limits: Limits) -> float:
    kind = type(value)
    if kind is float:
        number: float = value
    elif kind is int:
        number = float(value)
    elif value is None:
        raise InvalidRecord("missing_field", f"{name} is required")
    else:
        raise InvalidRecord("wrong_type", f"{name} must be a number, got {show(value)}")
    # NaN fails both comparisons; so do denormals and absurd values
    if not limits.min_price <= number <= limits.max_price:
        if number <= 0:
            raise InvalidRecord("non_positive_price", f"{name} must be positive, got {show(value)}")
        raise InvalidRecord(
            "price_out_of_bounds",
            f"{name} must be in [{limits.min_price:g}, {limits.max_price:g}], got {show(value)}",
        )
    return number


def optional_price(value: Any, name: str, limits: Limits) -> float | None:
    return None if value is None else price(value, name, limits)


def volume(value: Any, name: str, limits: Limits) -> float | None:
    if value is None:
        return None
    kind = type(value)
    if kind is float:
        number: float = value
    elif kind is int:
        number = float(value)
    else:
        raise InvalidRecord("wrong_type", f"{name} must be a number, got {show(value)}")
    if number == 0.0:
        return 0.0
    if not limits.min_price <= number <= limits.max_volume:
        if number < 0:
            raise InvalidRecord(
                "negative_volume", f"{name} must not be negative, got {show(value)}"
            )
        raise InvalidRecord(
            "volume_out_of_bounds",
            f"{name} must be 0 or in [{limits.min_price:g}, {limits.max_volume:g}], "
            f"got {show(value)}",
        )
    return number


def percent(value: Any, name: str) -> float | None:
    """A change in percent: a finite number in [-100, 1e6]."""
    if value is None:
        return None
    kind = type(value)
    if kind is not float and kind is not int:
        raise InvalidRecord("wrong_type", f"{name} must be a number, got {show(value)}")
    number = float(value)
    if not -100.0 <= number <= 1e6:
        raise InvalidRecord("out_of_bounds", f"{name} must be in [-100, 1e6], got {show(value)}")
    return number


def instant(value: Any, name: str) -> int:
    """Integer milliseconds since the epoch, not before ``EPOCH_FLOOR_MS``."""
    if type(value) is not int:
        if value is None:
            raise InvalidRecord("no_timestamp", f"{name} is required")
        raise InvalidRecord("wrong_type", f"{name} must be integer ms, got {show(value)}")
    if value < EPOCH_FLOOR_MS:
        raise InvalidRecord("timestamp_too_old", f"{name} is before 2009, got {show(value)}")
    return value


def received(obj: Any, now_ms: int, limits: Limits) -> int:
    """``received_ms``, within ``[now - max_age_ms, now + max_ahead_ms]``."""
    value = instant(obj.get("received_ms"), "received_ms")
    if value > now_ms + limits.max_ahead_ms:
        raise InvalidRecord("received_in_future", f"received_ms {value} is ahead of now ({now_ms})")
    if value < now_ms - limits.max_age_ms:
        raise InvalidRecord("received_too_old", f"received_ms {value} is older than the window")
    return value


def as_of(obj: Any, received_ms: int, max_age_ms: int, limits: Limits) -> int:
    """``as_of_ms``, within ``[received - max_age_ms, received + max_ahead_ms]``."""
    value = instant(obj.get("as_of_ms"), "as_of_ms")
    if value > received_ms + limits.max_ahead_ms:
        raise InvalidRecord(
            "timestamp_in_future",
            f"as_of_ms {value} is more than {limits.max_ahead_ms} ms after received_ms",
        )
    if value < received_ms - max_age_ms:
        raise InvalidRecord(
            "timestamp_too_old", f"as_of_ms {value} is more than {max_age_ms} ms old"
        )
    return value
