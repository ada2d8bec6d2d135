"""Faust records: the schemas of every message on warmfleet's topics.

Timestamps are integer milliseconds since the epoch (UTC). ``as_of_ms`` is the exchange's
own timestamp for the data; ``received_ms`` is when the poller got it. Prices and volumes
are floats as ccxt normalises them. Records are singular nouns.
"""

from __future__ import annotations

from typing import Any

import faust


class WarmJob(faust.Record, serializer="json"):
    """Ask the poller that owns ``exchange`` to fetch ``data_type`` for ``symbols`` now."""

    job_id: str
    exchange: str
    data_type: str  # tickers | books | candles
    symbols: list[str]
    phase: str
    interval_s: float
    issued_ms: int
    deadline_ms: int  # a poller drops (and counts) a job it picks up after this
    #: the issuing clock's election generation (``control.clock``): a poller drops (and
    #: counts) a job whose token is lower than the highest it has seen, i.e. a job from a
    #: clock that was deposed. 0: a clock from before fencing.
    fencing_token: int = 0
    #: ``scheduled`` (the clock) or ``demand`` (a reader missed the key: served first, within
    #: the exchange's budget). Absent in jobs from before the demand path: scheduled.
    priority: str = "scheduled"


class Ticker(faust.Record, serializer="json"):
    exchange: str
    symbol: str
    last: float
    bid: float | None
    ask: float | None
    high: float | None
    low: float | None
    open: float | None
    base_volume: float | None
    quote_volume: float | None
    change_pct: float | None
    as_of_ms: int
    received_ms: int


class Candles(faust.Record, serializer="json"):
    """OHLCV rows ``[open_ms, open, high, low, close, volume]``, oldest first."""

    exchange: str
    symbol: str
    timeframe: str
    rows: list[list[float]]
    as_of_ms: int
    received_ms: int


class BookTop(faust.Record, serializer="json"):
    """Top ``depth`` levels of an order book, ``[[price, amount], ...]`` best first."""

    exchange: str
    symbol: str
    bids: list[list[float]]
    asks: list[list[float]]
    as_of_ms: int
    received_ms: int


class SymbolAnalysis(faust.Record, serializer="json"):
    exchange: str
    symbol: str
    last: float
    volatility: float  # EWMA of log returns, annualised-free (per observation)
    vwap: float | None
    spread_bps: float | None
    change_pct: float | None
    momentum: float | None
    rsi: float | None
    ema_fast: float | None
    ema_slow: float | None
    atr: float | None
    signals: list[str]
    observations: int
    as_of_ms: int
    computed_ms: int


class MarketOverview(faust.Record, serializer="json"):
    scope: str  # an exchange id, or "all"
    symbols: int
    advancers: int
    decliners: int
    unchanged: int
    top_gainers: list[dict[str, Any]]
    top_losers: list[dict[str, Any]]
    total_quote_volume: float
    median_spread_bps: float | None
    volatility_index: float
    as_of_ms: int
    computed_ms: int


class PhaseChange(faust.Record, serializer="json"):
    """The clock's current phase and intervals (``control.phase``, compacted, key 'phase')."""

    phase: str
    intervals_s: dict[str, float]
    at_ms: int
    next_transition_ms: int | None
    override_until_ms: int | None = None
    volatility_boost: float = 1.0


#: a dead letter keeps at most this much of the original (base64 makes it 4/3 larger): a
#: letter must fit the broker's 1 MB message limit, or its batch could never be delivered
DEAD_LETTER_PAYLOAD_MAX = 64 * 1024


class DeadLetter(faust.Record, serializer="json"):
    """An event that could not be processed, kept with the reason and its original bytes
    (the first ``DEAD_LETTER_PAYLOAD_MAX`` of them; ``payload_bytes`` is the full size)."""

    source_topic: str
    partition: int
    offset: int
    reason: str
    key: str | None
    payload_b64: str
    at_ms: int
    payload_bytes: int | None = None
