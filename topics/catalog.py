"""The topic catalog: names, partitions, retention, compaction and message keys.

Tests and side-by-side deployments isolate themselves with a ``namespace`` that is
prefixed to every name (``"t1a2b."`` + ``"market.tickers"``).
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int | None
    compacted: bool
    key: str  # what the message key is, for humans and for the producer helpers

    def named(self, namespace: str = "") -> str:
        return f"{namespace}{self.name}"


WARM_JOBS = TopicSpec("warm.jobs", 6, 1 * DAY_MS, False, "exchange")
MARKET_TICKERS = TopicSpec("market.tickers", 12, 1 * DAY_MS, False, "exchange:symbol")
MARKET_OHLCV = TopicSpec("market.ohlcv", 12, 1 * DAY_MS, False, "exchange:symbol")
MARKET_BOOKS = TopicSpec("market.books", 12, 1 * DAY_MS, False, "exchange:symbol")
ANALYSIS_SYMBOLS = TopicSpec("analysis.symbols", 12, 7 * DAY_MS, False, "exchange:symbol")
ANALYSIS_OVERVIEW = TopicSpec("analysis.overview", 1, None, True, "exchange or 'all'")
CONTROL_PHASE = TopicSpec("control.phase", 1, None, True, "'phase' or 'override'")
#: the clocks' election: whoever the consumer group assigns its one partition leads
CONTROL_CLOCK = TopicSpec("control.clock", 1, None, True, "'leader'")
DEAD_LETTER = TopicSpec("warmfleet.deadletter", 3, 14 * DAY_MS, False, "source topic")

CATALOG: tuple[TopicSpec, ...] = (
    WARM_JOBS,
    MARKET_TICKERS,
    MARKET_OHLCV,
    MARKET_BOOKS,
    ANALYSIS_SYMBOLS,
    ANALYSIS_OVERVIEW,
    CONTROL_PHASE,
    CONTROL_CLOCK,
    DEAD_LETTER,
)


def symbol_key(exchange: str, symbol: str) -> str:
    """Message key for per-symbol topics: ``exchange:symbol`` (``binance:BTC/USDT``)."""
    return f"{exchange}:{symbol}"


def topic_config(spec: TopicSpec) -> dict[str, str]:
    """Broker-side topic config for creating ``spec``."""
    config: dict[str, str] = {}
    if spec.compacted:
        config["cleanup.policy"] = "compact"
        # roll a segment at least every 10 minutes so the cleaner can compact it: a busy
        # changelog is read from its start by every worker it is assigned to
        config["segment.ms"] = str(10 * 60 * 1000)
    if spec.retention_ms is not None:
        config["retention.ms"] = str(spec.retention_ms)
    return config
