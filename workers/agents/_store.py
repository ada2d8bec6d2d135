"""Per-symbol state of the partitions one worker owns, backed by compacted changelog topics.

Three tables: ``symbol-ticks`` (``TickerState``) and ``symbol-candles`` (``CandleState``),
keyed ``exchange:symbol``, and ``symbol-series`` (``CandleSeries``: the latest candle rows,
at most ``SERIES_ROWS``, that readers get from the candles key), keyed
``exchange:symbol:timeframe``. The book tops need no table: a book is cached as polled, and
only its ``as_of`` is kept (in memory) to refuse an older one. Every change is written to
the table's changelog partition with the same number as the source partition the key lives
on, so a worker that is assigned partition ``p`` of the source topics rebuilds exactly those
keys by reading partition ``p`` of each changelog to its end. The ticks and candles topic
names and JSON values are the ones the Faust tables of earlier versions wrote (their keys
were JSON strings, read here too).

Healing: a state whose ``as_of_ms`` lies in the future (beyond the contract's clock skew)
can only come from before the contract refused such events. Kept, it would make every real
event "older" and freeze the symbol; so it is discarded, with a log line, when it is loaded
(the key keeps the state before it, if compaction left one; ``heal_*`` discards one met
later), and the symbol's next event goes on from there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaTimeoutError

from topics import DEFAULT_LIMITS, MARKET_OHLCV, MARKET_TICKERS, Limits, TopicSpec
from workers.analytics import CandleState, TickerState

log = structlog.get_logger(__name__)


class Stamped(Protocol):
    """A table's state: every one carries the ``as_of`` it was computed at."""

    @property
    def as_of_ms(self) -> int: ...


S = TypeVar("S", bound=Stamped)

TICKS_CHANGELOG = TopicSpec(
    "warmfleet-agents-symbol-ticks-changelog", MARKET_TICKERS.partitions, None, True,
    "exchange:symbol",
)  # fmt: skip
CANDLES_CHANGELOG = TopicSpec(
    "warmfleet-agents-symbol-candles-changelog", MARKET_OHLCV.partitions, None, True,
    "exchange:symbol",
)  # fmt: skip
SERIES_CHANGELOG = TopicSpec(
    "warmfleet-agents-symbol-series-changelog", MARKET_OHLCV.partitions, None, True,
    "exchange:symbol:timeframe",
)  # fmt: skip
CHANGELOGS = (TICKS_CHANGELOG, CANDLES_CHANGELOG, SERIES_CHANGELOG)
#: candle rows kept (and cached) per (exchange, symbol, timeframe)
SERIES_ROWS = 500
#: a recovery that takes longer fails (and is retried with the next batch)
RECOVERY_TIMEOUT_S = 120.0


def ticker_value(state: TickerState, partition: int) -> bytes:
    """A ``symbol-ticks`` changelog value (the source partition rides along, as it did)."""
    return orjson.dumps({**state.to_dict(), "partition": partition})


def ticker_from(value: bytes) -> TickerState:
    fields = orjson.loads(value)
    fields.pop("partition", None)  # the record's own partition says where the key lives
    return TickerState.from_dict(fields)


def candles_value(state: CandleState) -> bytes:
    """A ``symbol-candles`` changelog value."""
    return orjson.dumps(state.to_dict())


def candles_from(value: bytes) -> CandleState:
    return CandleState.from_dict(orjson.loads(value))


@dataclass(frozen=True, slots=True)
class CandleSeries:
    """The latest candle rows of one (exchange, symbol, timeframe), oldest first."""

    exchange: str
    symbol: str
    timeframe: str
    rows: list[list[float]]
    as_of_ms: int
    received_ms: int

    def newer_than(self, other: CandleSeries | None) -> bool:
        """A poll with the same ``as_of`` (the last row's open) received later may revise
        the last row: it is newer; a replay of one already merged is not."""
        return other is None or (self.as_of_ms, self.received_ms) > (
            other.as_of_ms, other.received_ms,
        )  # fmt: skip

    def merged(self, kept: CandleSeries | None, most: int = SERIES_ROWS) -> CandleSeries:
        """These rows merged into ``kept``'s by ``open_ms`` (these win), the last ``most``."""
        if kept is None:
            rows = self.rows[-most:]
        else:
            by_open = {row[0]: row for row in kept.rows}
            by_open.update((row[0], row) for row in self.rows)
            rows = [by_open[t] for t in sorted(by_open)[-most:]]
        return CandleSeries(
            self.exchange, self.symbol, self.timeframe, rows, self.as_of_ms, self.received_ms
        )

    def value(self) -> dict[str, Any]:
        """What the candles key holds (docs/contracts.md)."""
        return {
            "exchange": self.exchange, "symbol": self.symbol, "timeframe": self.timeframe,
            "rows": self.rows,
        }  # fmt: skip

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {**self.value(), "as_of_ms": self.as_of_ms, "received_ms": self.received_ms}
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> CandleSeries:
        fields = orjson.loads(raw)
        return cls(
            fields["exchange"], fields["symbol"], fields["timeframe"], fields["rows"],
            int(fields["as_of_ms"]), int(fields["received_ms"]),
        )  # fmt: skip


def series_key(exchange: str, symbol: str, timeframe: str) -> str:
    return f"{exchange}:{symbol}:{timeframe}"


def _now_ms() -> int:
    return int(time.time() * 1000)


class SymbolStore:
    def __init__(self, namespace: str, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.ticks_changelog = TICKS_CHANGELOG.named(namespace)
        self.candles_changelog = CANDLES_CHANGELOG.named(namespace)
        self.series_changelog = SERIES_CHANGELOG.named(namespace)
        self.ticks: dict[str, TickerState] = {}
        self.candles: dict[str, CandleState] = {}
        #: key -> the source partition it lives on
        self.partition_of: dict[str, int] = {}
        #: ``exchange:symbol:timeframe`` -> rows, and the source partition of each
        self.series: dict[str, CandleSeries] = {}
        self.series_partition: dict[str, int] = {}
        #: ``exchange:symbol`` -> as_of_ms of the latest book top cached
        self.books: dict[str, int] = {}
        #: source partitions recovered and being processed here
        self.owned: set[int] = set()
        self.recovering = False
        #: states discarded because they came from the future (at load or later)
        self.healed = 0
        self._horizon = 0  # while recovering: a state newer than this is discarded

    def heal_ticks(self, key: str) -> None:
        """Discard ``key``'s ticker state, found to lie in the future: the symbol's event
        starts it afresh."""
        state = self.ticks.pop(key, None)
        self._healed(self.ticks_changelog, key, state.as_of_ms if state else None)

    def heal_candles(self, key: str) -> None:
        state = self.candles.pop(key, None)
        self._healed(self.candles_changelog, key, state.as_of_ms if state else None)

    def heal_series(self, key: str) -> None:
        series = self.series.pop(key, None)
        self.series_partition.pop(key, None)
        self._healed(self.series_changelog, key, series.as_of_ms if series else None)

    def _healed(self, topic: str, key: str, as_of_ms: int | None) -> None:
        self.healed += 1
        log.warning("future_state_discarded", topic=topic, key=key, as_of_ms=as_of_ms,
                    now_ms=_now_ms())  # fmt: skip

    def rows(self) -> Iterator[tuple[int, TickerState]]:
        """``(partition, ticker state)`` of every symbol this worker holds."""
        partition_of = self.partition_of
        for key, state in list(self.ticks.items()):
            yield partition_of[key], state

    def drop(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        self.owned -= gone
        for key in [k for k, p in self.partition_of.items() if p in gone]:
            del self.partition_of[key]
            self.ticks.pop(key, None)
            self.candles.pop(key, None)
            self.books.pop(key, None)
        for key in [k for k, p in self.series_partition.items() if p in gone]:
            del self.series_partition[key]
            del self.series[key]

    async def recover(self, reader: AIOKafkaConsumer, partitions: Iterable[int]) -> int:
        """Read the changelogs' ``partitions`` to their end offsets into the tables, then
        own them. Returns the number of changelog records read."""
        wanted = sorted(set(partitions) - self.owned)
        if not wanted:
            return 0
        started = time.monotonic()
        self.recovering = True
        self._horizon = _now_ms() + self.limits.max_ahead_ms
        try:
            tps = [
                TopicPartition(topic, p)
                for topic in (self.ticks_changelog, self.candles_changelog, self.series_changelog)
                for p in wanted
            ]
            reader.assign(tps)
            ends = await reader.end_offsets(tps)
            await reader.seek_to_beginning(*tps)
            left = {tp for tp in tps if ends[tp] > 0}
            read = 0
            deadline = time.monotonic() + RECOVERY_TIMEOUT_S
            while left:
                if time.monotonic() > deadline:
                    raise KafkaTimeoutError(
                        f"changelogs not read to their end within {RECOVERY_TIMEOUT_S:g} s"
                    )
                batch = await reader.getmany(*left, timeout_ms=500)
                for tp, records in batch.items():
                    for record in records:
                        self._apply(tp, record.key, record.value)
                    read += len(records)
                for tp in list(left):
                    if await reader.position(tp) >= ends[tp]:
                        left.discard(tp)
            self.owned.update(wanted)
        finally:
            self.recovering = False
            reader.unsubscribe()
        log.info(
            "tables_recovered", partitions=wanted, records=read, keys=len(self.partition_of),
            seconds=round(time.monotonic() - started, 3),
        )  # fmt: skip
        return read

    def _apply(self, tp: TopicPartition, raw_key: bytes | None, value: bytes | None) -> None:
        if raw_key is None:
            return
        key = raw_key.decode("utf-8", "replace").strip('"')
        try:
            if tp.topic == self.ticks_changelog:
                kept = self._restore(tp.topic, self.ticks, key, value, ticker_from)
            elif tp.topic == self.series_changelog:
                if value is None:
                    self.series_partition.pop(key, None)
                if self._restore(tp.topic, self.series, key, value, CandleSeries.from_bytes):
                    self.series_partition[key] = tp.partition
                return
            else:
                kept = self._restore(tp.topic, self.candles, key, value, candles_from)
        except (orjson.JSONDecodeError, TypeError, ValueError, KeyError) as exc:
            # a record this version cannot read: the next event of the key starts afresh
            log.warning("changelog_record_skipped", topic=tp.topic, key=key, error=str(exc))
            return
        if kept:
            self.partition_of[key] = tp.partition

    def _restore(
        self,
        topic: str,
        table: dict[str, S],
        key: str,
        value: bytes | None,
        load: Callable[[bytes], S],
    ) -> bool:
        """Put ``key``'s changelog ``value`` into ``table`` (None: the key was deleted);
        False when nothing was kept: deleted, or healed (a state from the future: the key
        keeps the state read before it, if compaction left one)."""
        if value is None:
            table.pop(key, None)
            return False
        state = load(value)
        if state.as_of_ms > self._horizon:
            self._healed(topic, key, state.as_of_ms)
            return False
        table[key] = state
        return True
